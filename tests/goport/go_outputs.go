// Prints the Go outputs the tests in tests/goport pin: go run tests/goport/go_outputs.go > tests/goport/go_outputs.json
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"time"
)

func main() {
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.5, 1.5, 100, 123456, 1234567, 1e6, 1e20, 1e21, 1e-6, 1e-7,
		0.000001234, 12345678.9, 3.141592653589793, 2.5e-10, 1.7976931348623157e308, 5e-324, 123456789012345680000,
		0.0001, 0.00001, 100000, 999999, 9999999, 1e100, -2.5, 1.0 / 3, 2.0 / 3, 299792458, 6.02214076e23, math.Inf(1),
		math.Inf(-1), math.NaN()}
	type row struct {
		F    float64 `json:"-"`
		Repr string  `json:"value"`
		Fmt  string  `json:"f"`
		G    string  `json:"g"`
		E    string  `json:"e"`
		JSON string  `json:"json"`
	}
	rows := []row{}
	for _, f := range floats {
		r := row{Repr: strconv.FormatFloat(f, 'g', -1, 64), Fmt: strconv.FormatFloat(f, 'f', -1, 64),
			G: strconv.FormatFloat(f, 'g', -1, 64), E: strconv.FormatFloat(f, 'e', -1, 64)}
		if b, err := json.Marshal(f); err == nil {
			r.JSON = string(b)
		} else {
			r.JSON = "error: " + err.Error()
		}
		rows = append(rows, r)
	}
	type intRow struct {
		Text string `json:"text"`
		Int  string `json:"parse_int"`
		Uint string `json:"parse_uint"`
	}
	ints := []intRow{}
	for _, s := range []string{"0", "7", "-7", "+7", "017", "08", "0x1F", "0X1f", "-0x10", "0o17", "0b101", "1_000",
		"0x_1F", "_1", "1__0", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"-9223372036854775809", "18446744073709551615", "18446744073709551616", "", "+", "0x", "1e3", " 1", "1.0"} {
		r := intRow{Text: s, Int: "error", Uint: "error"}
		if v, err := strconv.ParseInt(s, 0, 64); err == nil {
			r.Int = strconv.FormatInt(v, 10)
		}
		if v, err := strconv.ParseUint(s, 0, 64); err == nil {
			r.Uint = strconv.FormatUint(v, 10)
		}
		ints = append(ints, r)
	}
	type durRow struct {
		Text  string `json:"text"`
		Nanos *int64 `json:"nanoseconds"`
		Error string `json:"error,omitempty"`
	}
	durs := []durRow{}
	for _, s := range []string{"0", "1s", "1.5s", "300ms", "1h2m", "72h", "1h30m", "250ms", "-1.5h", "+5m", "1us",
		"1µs", "1μs", "2ns", ".5s", "5.s", "1.0000000001s", "9223372036854775807ns", "9223372036854775808ns", "",
		"1", "s", "1x", "1.s2", "-", ".s", "1h-2m", "1é", "é", "5\"s\\", "\x01s", "\xef\xbf\xbd"} {
		r := durRow{Text: s}
		if d, err := time.ParseDuration(s); err == nil {
			n := int64(d)
			r.Nanos = &n
		} else {
			r.Error = err.Error()
		}
		durs = append(durs, r)
	}
	type fnvRow struct {
		Text string `json:"text"`
		Hash uint32 `json:"fnv32a"`
	}
	fnvs := []fnvRow{}
	for _, s := range []string{"", "a", "sensor", "my sensor/with*odd.chars", "ünïcødé", "group-1"} {
		h := fnv.New32a()
		h.Write([]byte(s))
		fnvs = append(fnvs, fnvRow{s, h.Sum32()})
	}
	type parseFloatRow struct {
		Text  string `json:"text"`
		Value string `json:"value"`
		Error string `json:"error,omitempty"`
	}
	parseFloats := []parseFloatRow{}
	for _, s := range []string{"0", "1", "-1", "+1.5", "1.", ".5", "-.5", ".", "", "+", "-", "1e3", "1E3", "1e+3",
		"1e-3", "1e", "1e+", "e3", "1.5e3", "01.5", "007", "1_000", "1_000.5", "1__0", "_1", "1_", "0x1p4", "0x1P-2",
		"0X1.8p1", "0x.8p1", "0x1", "0x1.8", "0x_1p4", "0x1_0p0", "0xp1", "0x1p", "0x1p1.5", "0b101", "0o17",
		"inf", "Inf", "INF", "+inf", "-Inf", "infinity", "-Infinity", "INFINITY", "infin", "in", "nan", "NaN", "NAN",
		"+nan", "-nan", "nana", "1e308", "1.7976931348623157e308", "1.8e308", "-1e400", "1e-400", "4.9e-324",
		"2e-324", "0x1p1024", "0x1p-1080", "123456789012345678901234567890", "0.1", "3.141592653589793",
		" 1", "1 ", "1,5", "١", "1e1_0", "1.5_5", "0x1.8_0p1", "9007199254740993", "0x1.fffffffffffff8p1023"} {
		r := parseFloatRow{Text: s}
		f, err := strconv.ParseFloat(s, 64)
		r.Value = strconv.FormatFloat(f, 'g', -1, 64)
		if err != nil {
			r.Error = err.Error()
		}
		parseFloats = append(parseFloats, r)
	}
	type stringRow struct {
		Hex    string `json:"hex"`
		JSON   string `json:"json"`
		NoHTML string `json:"json_no_html"`
	}
	noHTML := func(v any) string {
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		if err := e.Encode(v); err != nil {
			return "error: " + err.Error()
		}
		return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	}
	stringRows := []stringRow{}
	for _, s := range []string{"", "plain", "<a href=\"x\">&amp;</a>", "quote\" back\\ slash/", "\b\f\n\r\t",
		"\x00\x01\x1f\x7f", "line\u2028sep\u2029para", "é ü 日本 😀", "\xff", "a\xe2\x82b", "\xe2\x82",
		"\xed\xa0\x80", "\xf0\x9f\x98", "\xc0\xaf", "\xef\xbf\xbd", "\x80\x80é", "\u00e9\xe9"} {
		b, _ := json.Marshal(s)
		stringRows = append(stringRows, stringRow{hex.EncodeToString([]byte(s)), string(b), noHTML(s)})
	}
	type valueRow struct {
		Input  string `json:"input"`
		JSON   string `json:"json"`
		Indent string `json:"indent"`
		NoHTML string `json:"json_no_html"`
	}
	valueRows := []valueRow{}
	for _, s := range []string{`null`, `true`, `[]`, `{}`, `[1, 2.5, -0.0, 1e21, 1e-7, 123456789, 1e20]`,
		`{"b": 1, "a": [true, null, {"z": "<>", "y": {}}], "A": "&", "é": 1, "z": 2, "_": 3, "aa": [], "1": 0}`,
		`{"nested": {"deeper": {"deepest": [[[]], [{}], "\u2028"]}}}`, `[0.1, 0.2, 0.30000000000000004, 1e6, 1e-6]`,
		`{"\u00e9": 1, "e\u0301": 2, "\ud83d\ude00": 3, "\uffff": 4, "~": 5}`, `"\ud800 lone"`,
		`{"html": "<script>alert('x') & more</script>", "ctl": "\u0000\u001f"}`} {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			panic(err)
		}
		b, _ := json.Marshal(v)
		ind, _ := json.MarshalIndent(v, "", "  ")
		valueRows = append(valueRows, valueRow{s, string(b), string(ind), noHTML(v)})
	}
	type float32Row struct {
		Value string `json:"value"`
		G     string `json:"g"`
		E     string `json:"e"`
		F     string `json:"f"`
		E3    string `json:"e3"`
	}
	float32s := []float64{0, math.Copysign(0, -1), 0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 1e-45, 1.4e-45, 1e-38, 1.17549435e-38,
		3.4028234663852886e38, 3.4028235e38, 3.5e38, 1e39, 1e10, 123456.789, 1e6, 999999, 9999999, 16777216, 16777217,
		3.141592653589793, 1e-7, 100, 1.5, -2.5, 6.02214076e23, math.Inf(1), math.Inf(-1), math.NaN()}
	for e := -149; e <= 127; e++ { // powers of two: the narrower lower gap, where rounding shortest is hardest
		float32s = append(float32s, math.Ldexp(1, e))
	}
	seed := uint32(12345)
	for i := 0; i < 300; i++ { // arbitrary float32 bit patterns (an LCG, so the list is the same every run)
		seed = seed*1664525 + 1013904223
		f := math.Float32frombits(seed)
		if !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) {
			float32s = append(float32s, float64(f))
		}
	}
	f32Rows := []float32Row{}
	for _, f := range float32s {
		f32Rows = append(f32Rows, float32Row{strconv.FormatFloat(f, 'g', -1, 64), strconv.FormatFloat(f, 'g', -1, 32),
			strconv.FormatFloat(f, 'e', -1, 32), strconv.FormatFloat(f, 'f', -1, 32), strconv.FormatFloat(f, 'e', 3, 32)})
	}
	type unmarshalRow struct {
		Text  string `json:"text"`
		JSON  string `json:"json"`
		Error string `json:"error,omitempty"`
	}
	unmarshals := []unmarshalRow{}
	for _, s := range []string{`{"a":1e400}`, `{"a":[1,-1e999]}`, `[1e400, 2, 1e500]`, `1e400`, `{"a":1e400,"b":}`,
		`{"a":-0}`, `{"a":NaN}`, `[Infinity]`, `{"a":1E2,"b":0.1,"c":-1.5e-3}`, `123456789012345678901234567890`,
		`4.9e-324`, `1e-400`, `[0.1, 1e308, 1.7976931348623157e308, 1.7976931348623159e308]`, `{"a":1}x`, ``} {
		r := unmarshalRow{Text: s}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			r.Error = err.Error()
		}
		b, _ := json.Marshal(v)
		r.JSON = string(b)
		unmarshals = append(unmarshals, r)
	}
	// fmt.Sprint and reflect.DeepEqual of govaluate's values, in the order of PRINTED and EQUALITIES in
	// tests/goport/test_values.py (NaN and infinities cannot travel as JSON, so the inputs are written twice)
	nan := math.NaN()
	type m = map[string]any
	type l = []any
	sprints := []string{}
	for _, v := range []any{nil, true, false, "text", "", 1.0, math.Copysign(0, -1), 0.1, 1e21, 1e20, 123456789.0,
		1e-5, math.Inf(1), math.Inf(-1), nan, l{}, l{1.0, "a b", nil, true}, m{},
		m{"b": 2.0, "a": l{1.5, m{"z": nil}}, "B": "x"}} {
		sprints = append(sprints, fmt.Sprint(v))
	}
	deepEquals := []bool{}
	for _, p := range [][2]any{{nil, nil}, {1.0, 1.0}, {1.0, "1"}, {true, 1.0}, {false, nil}, {"a", "a"}, {nan, nan},
		{0.0, math.Copysign(0, -1)}, {l{1.0, l{2.0}}, l{1.0, l{2.0}}}, {l{1.0}, l{1.0, 2.0}}, {l{}, m{}}, {l{nil}, l{}},
		{m{"a": l{1.0, m{"b": nil}}}, m{"a": l{1.0, m{"b": nil}}}}, {m{"a": 1.0}, m{"a": 1.0, "b": 2.0}},
		{m{"a": nil}, m{"b": nil}}, {m{"a": nan}, m{"a": nan}}} {
		deepEquals = append(deepEquals, reflect.DeepEqual(p[0], p[1]))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	enc.Encode(map[string]any{
		"_produced_by": runtime.Version() + ": go run tests/goport/go_outputs.go > tests/goport/go_outputs.json (strconv, encoding/json, time, hash/fnv, fmt, reflect)",
		"format_float": rows, "parse_int": ints, "parse_duration": durs, "fnv32a": fnvs,
		"parse_float": parseFloats, "marshal_string": stringRows, "marshal_value": valueRows,
		"format_float32": f32Rows, "unmarshal": unmarshals,
		"sprint_v": sprints, "deep_equal": deepEquals})
}
