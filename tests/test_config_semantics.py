"""Semantic checks of the spec models (issue 11): each clearly wrong value is one `FILE:LINE: field.path: message`
line pointing at the culprit's own line, and the same check serves `validate`, `run` and `test`.

Every case edits one valid document (which loads cleanly, see the first test) with one textual replacement.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorium.engine.assemble import check_document
from sensorium.engine.busconfig import from_url
from sensorium.engine.cli import main
from sensorium.engine.config import ConfigErrors, load
from sensorium.engine.core.errors import ConfigError

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: s
spec:
  dependencies:
    - name: order
      eventSourceName: webhook
      eventName: example
      filters:
        data:
          - path: body.total
            type: number
            value: ["10"]
            comparator: ">="
          - path: body.paid
            type: bool
            value: ["true"]
        time:
          start: "09:00:00"
          stop: "17:00:00"
      transform:
        jq: ".body"
  triggers:
    - template:
        name: notify
        http:
          url: http://127.0.0.1:9000/hook
          timeout: 10
          headers:
            Content-Type: application/json
          dynamicHeaders:
            - src: {dependencyName: order, dataKey: body.id}
              dest: X-Order
          secureHeaders:
            - name: Authorization
              valueFrom: {secretKeyRef: {name: token, key: value}}
          payload:
            - src: {dependencyName: order, dataTemplate: "{{ .Input.body.id }}"}
              dest: id
      parameters:
        - src: {dependencyName: order, contextKey: subject}
          dest: http.url
          operation: append
      retryStrategy:
        steps: 3
        duration: 1s
        factor: 2.0
        jitter: 0.5
      rateLimit: {unit: Second, requestsPerUnit: 5}
    - template:
        name: audit
        log:
          intervalSeconds: 5
"""

SOURCE = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: webhook
spec:
  webhook:
    example:
      port: "12000"
      endpoint: /example
      method: POST
      maxPayloadSize: 1048576
"""

BUS = """\
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata:
  name: default
spec:
  jetstream:
    url: nats://127.0.0.1:4222
    streamConfig: |
      maxAge: 72h
"""

KAFKA_BUS = """\
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata:
  name: default
spec:
  kafka:
    url: 127.0.0.1:9092,127.0.0.2
    topic: argo-events
"""

DEP = "spec.dependencies[0]"
HTTP = "spec.triggers[0].template.http"
TRIGGER = "spec.triggers[0]"

CASES: list[tuple[str, str, str, str, str]] = [
    # (id, base document, text replaced, replacement, the one expected line)
    ("number-value-not-a-number", SENSOR, 'value: ["10"]', 'value: ["10", "ten"]',
     f"14: {DEP}.filters.data[0].value[1]: value 'ten' is not a number (type is number): "
     'strconv.ParseFloat: parsing "ten": invalid syntax'),
    ("number-value-out-of-range", SENSOR, 'value: ["10"]', 'value: ["1e400"]',
     f"14: {DEP}.filters.data[0].value[0]: value '1e400' is not a number (type is number): "
     'strconv.ParseFloat: parsing "1e400": value out of range'),
    ("bool-value-not-a-bool", SENSOR, 'value: ["true"]', 'value: ["yes"]',
     f"18: {DEP}.filters.data[1].value[0]: value 'yes' is not a bool: want true or false "
     "(Go also reads 1, t, T, TRUE, True, 0, f, F, FALSE, False)"),
    ("unknown-comparator", SENSOR, 'comparator: ">="', 'comparator: "=>"',
     f"15: {DEP}.filters.data[0].comparator: input should be '>=', '>', '=', '!=', '<', '<=' or ''"),
    ("time-start-format", SENSOR, 'start: "09:00:00"', 'start: "9am"',
     f'20: {DEP}.filters.time.start: parsing time "9am" as "15:04:05": not an hh:mm:ss time of day'),
    ("time-stop-format", SENSOR, 'stop: "17:00:00"', 'stop: "17:00:61"',
     f'21: {DEP}.filters.time.stop: parsing time "17:00:61" as "15:04:05": not an hh:mm:ss time of day'),
    ("time-stop-equals-start", SENSOR, 'stop: "17:00:00"', 'stop: "09:00:00"',
     f"21: {DEP}.filters.time.stop: invalid event time filter: stop '09:00:00' is equal to start '09:00:00'"),
    ("time-unknown-zone", SENSOR, 'stop: "17:00:00"', 'stop: "17:00:00"\n          timezone: Mars/Base',
     f"22: {DEP}.filters.time.timezone: invalid timezone 'Mars/Base'"),
    ("jq-and-script", SENSOR, 'jq: ".body"', 'jq: ".body"\n        script: "return event"',
     f"24: {DEP}.transform.script: a transform has exactly one kind, got jq and script"),
    ("url-not-a-url", SENSOR, "url: http://127.0.0.1:9000/hook", "url: 'ht!tp:://'",
     f"28: {HTTP}.url: not an absolute URL (want http:// or https://)"),
    ("url-ftp", SENSOR, "url: http://127.0.0.1:9000/hook", "url: ftp://127.0.0.1/hook",
     f"28: {HTTP}.url: URL scheme 'ftp' is not supported (want http:// or https://)"),
    ("url-no-host", SENSOR, "url: http://127.0.0.1:9000/hook", "url: http:///hook",
     f"28: {HTTP}.url: URL has no host (want http://HOST[:PORT]/...)"),
    ("url-port-out-of-range", SENSOR, "url: http://127.0.0.1:9000/hook", "url: http://127.0.0.1:99999/hook",
     f"28: {HTTP}.url: port 99999 is out of range (1-65535)"),
    ("url-control-character", SENSOR, "url: http://127.0.0.1:9000/hook", 'url: "http://127.0.0.1/a\\nb"',
     f"28: {HTTP}.url: URL contains a control character"),
    ("negative-timeout", SENSOR, "timeout: 10", "timeout: -1",
     f"29: {HTTP}.timeout: timeout must not be negative, got -1 (0 means the default, 60 s)"),
    ("header-value-crlf", SENSOR, "Content-Type: application/json", 'Content-Type: "a/b\\r\\nX-Evil: 1"',
     f"31: {HTTP}.headers.Content-Type: header value contains CR, LF or NUL"),
    ("header-name-space", SENSOR, "Content-Type: application/json", '"Content Type": application/json',
     f"31: {HTTP}.headers.Content Type: header name 'Content Type' is not a valid HTTP header name "
     "(RFC 7230 token)"),
    ("dynamic-header-name", SENSOR, "dest: X-Order", 'dest: "X-Order:"',
     f"34: {HTTP}.dynamicHeaders[0].dest: header name 'X-Order:' is not a valid HTTP header name "
     "(RFC 7230 token)"),
    ("secure-header-name", SENSOR, "- name: Authorization", '- name: "Author ization"',
     f"36: {HTTP}.secureHeaders[0].name: header name 'Author ization' is not a valid HTTP header name "
     "(RFC 7230 token)"),
    ("payload-template-unclosed", SENSOR, '"{{ .Input.body.id }}"', '"{{ .Input.body.id "',
     f"39: {HTTP}.payload[0].src.dataTemplate: template does not parse: template: param:1: "
     "unclosed action"),
    ("payload-template-unknown-function", SENSOR, '"{{ .Input.body.id }}"', '"{{ .Input.body.id | nosuch }}"',
     f'39: {HTTP}.payload[0].src.dataTemplate: template does not parse: template: param:1: '
     'function "nosuch" not defined'),
    ("payload-unknown-dependency", SENSOR, "{dependencyName: order, dataTemplate",
     "{dependencyName: ordr, dataTemplate",
     f"39: {HTTP}.payload[0].src.dependencyName: unknown dependency 'ordr' (the sensor's dependencies: order)"),
    ("dynamic-header-unknown-dependency", SENSOR, "{dependencyName: order, dataKey",
     "{dependencyName: nope, dataKey",
     f"33: {HTTP}.dynamicHeaders[0].src.dependencyName: unknown dependency 'nope' "
     "(the sensor's dependencies: order)"),
    ("parameter-unknown-dependency", SENSOR, "{dependencyName: order, contextKey",
     "{dependencyName: orders, contextKey",
     f"42: {TRIGGER}.parameters[0].src.dependencyName: unknown dependency 'orders' "
     "(the sensor's dependencies: order)"),
    ("parameter-empty-dependency", SENSOR, "{dependencyName: order, contextKey", '{dependencyName: "", contextKey',
     f"42: {TRIGGER}.parameters[0].src.dependencyName: parameter dependency name can't be empty"),
    ("log-and-http", SENSOR, "name: notify\n", "name: notify\n        log: {}\n",
     f"27: {TRIGGER}.template.log: a trigger template has exactly one trigger type, got http and log"),
    ("empty-trigger-name", SENSOR, "name: notify", 'name: ""',
     f"26: {TRIGGER}.template.name: trigger must define a name"),
    ("host-header-crlf", SENSOR, "timeout: 10", 'timeout: 10\n          host: "a\\r\\nX-Evil: 1"',
     f"30: {HTTP}.host: header value contains CR, LF or NUL"),
    ("negative-retry-steps", SENSOR, "steps: 3", "steps: -3",
     f"46: {TRIGGER}.retryStrategy.steps: steps must not be negative, got -3"),
    ("negative-retry-duration", SENSOR, "duration: 1s", "duration: -1s",
     f"47: {TRIGGER}.retryStrategy.duration: duration must not be negative, got '-1s'"),
    ("negative-retry-factor", SENSOR, "factor: 2.0", "factor: -2.0",
     f"48: {TRIGGER}.retryStrategy.factor: factor must not be negative, got -2.0"),
    ("negative-retry-jitter", SENSOR, "jitter: 0.5", "jitter: -0.5",
     f"49: {TRIGGER}.retryStrategy.jitter: jitter must not be negative, got -0.5"),
    ("zero-rate-limit", SENSOR, "requestsPerUnit: 5", "requestsPerUnit: -5",
     f"50: {TRIGGER}.rateLimit.requestsPerUnit: input should be greater than 0"),
    ("unknown-rate-limit-unit", SENSOR, "unit: Second", "unit: Minutes",
     f"50: {TRIGGER}.rateLimit.unit: unknown rate limit unit 'Minutes' (want Second, Minute or Hour)"),
    ("negative-log-interval", SENSOR, "intervalSeconds: 5", "intervalSeconds: -5",
     "54: spec.triggers[1].template.log.intervalSeconds: input should be greater than or equal to 0"),
    ("webhook-port-too-big", SOURCE, 'port: "12000"', 'port: "99999"',
     "8: spec.webhook.example.port: port 99999 is out of range (1-65535)"),
    ("webhook-port-zero", SOURCE, 'port: "12000"', "port: 0",
     "8: spec.webhook.example.port: port 0 is out of range (1-65535)"),
    ("webhook-negative-max-payload", SOURCE, "maxPayloadSize: 1048576", "maxPayloadSize: -1",
     "11: spec.webhook.example.maxPayloadSize: maxPayloadSize must be at least 1 byte, got -1"),
    ("jetstream-and-kafka", BUS, "  jetstream:\n", "  kafka: {url: 127.0.0.1:9092}\n  jetstream:\n",
     "6: spec.kafka: an EventBus has exactly one bus kind, got jetstream and kafka"),
    ("no-bus-kind", BUS, "  jetstream:\n    url: nats://127.0.0.1:4222\n    streamConfig: |\n      maxAge: 72h\n",
     "  {}\n", "5: spec: no bus: set one of jetstream, jetstreamExotic or kafka"),
    ("nats-streaming", BUS, "  jetstream:\n", "  nats: {native: {}}\n  jetstream:\n",
     "6: spec.nats: EventBus spec.nats (NATS Streaming) is not supported; use jetstream or kafka"),
    ("jetstream-url-scheme", BUS, "url: nats://127.0.0.1:4222", "url: http://127.0.0.1:4222",
     "7: spec.jetstream.url: URL scheme 'http' is not supported (want nats:// or tls://)"),
    ("jetstream-url-port", BUS, "url: nats://127.0.0.1:4222", "url: 127.0.0.1:422222",
     "7: spec.jetstream.url: port 422222 is out of range (1-65535)"),
    ("jetstream-stream-config", BUS, "maxAge: 72h", "maxAge: 72h\n      maxMsgs: many",
     "8: spec.jetstream.streamConfig: maxMsgs: not an integer: 'many'"),
    ("kafka-topic-name", KAFKA_BUS, "topic: argo-events", "topic: argo events",
     "8: spec.kafka.topic: topic 'argo events' is not a valid Kafka topic name "
     "(1-249 of a-z, A-Z, 0-9, '.', '_', '-'; not '.' or '..')"),
    ("kafka-broker-port", KAFKA_BUS, "127.0.0.2", "127.0.0.2:0",
     "7: spec.kafka.url: kafka broker address '127.0.0.2:0': port 0 is out of range (1-65535)"),
    ("kafka-broker-not-host-port", KAFKA_BUS, "127.0.0.2", "127.0.0.2:x",
     "7: spec.kafka.url: kafka broker address '127.0.0.2:x' is not host:port"),
]


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    try:
        load([path], environ={}, checks=[check_document])
    except ConfigErrors as exc:
        return [e.render().replace(f"{path}:", "") for e in exc.errors]
    return []


@pytest.mark.parametrize("base", [SENSOR, SOURCE, BUS, KAFKA_BUS], ids=["sensor", "source", "bus", "kafka-bus"])
def test_the_base_documents_are_valid(tmp_path: Path, base: str) -> None:
    assert problems(tmp_path, base) == []


@pytest.mark.parametrize(("base", "old", "new", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_clearly_wrong_value_is_one_line_at_the_culprit(tmp_path: Path, base: str, old: str, new: str,
                                                         expected: str) -> None:
    assert base.count(old) == 1
    assert problems(tmp_path, base.replace(old, new)) == [expected]


def test_every_problem_of_a_file_is_reported_by_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (SENSOR.replace("url: http://127.0.0.1:9000/hook", "url: ftp://x/")
            .replace("steps: 3", "steps: -3").replace('port: "12000"', 'port: "99999"'))
    (tmp_path / "s.yaml").write_text(text)
    (tmp_path / "w.yaml").write_text(SOURCE.replace('port: "12000"', 'port: "99999"'))
    assert main(["validate", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert (out, err.replace(f"{tmp_path}/", "").splitlines()) == ("", [
        f"s.yaml:28: {HTTP}.url: URL scheme 'ftp' is not supported (want http:// or https://)",
        f"s.yaml:46: {TRIGGER}.retryStrategy.steps: steps must not be negative, got -3",
        "w.yaml:8: spec.webhook.example.port: port 99999 is out of range (1-65535)",
        "3 problems found",
    ])


def test_secret_looking_values_are_not_repeated(tmp_path: Path) -> None:
    """A header value or a URL may hold a credential: the message names the field, never the value."""
    text = SENSOR.replace("Content-Type: application/json", 'Authorization: "Bearer s3cr3t\\r\\n"').replace(
        "url: http://127.0.0.1:9000/hook", "url: ftp://user:s3cr3t@host/")
    found = problems(tmp_path, text)
    assert len(found) == 2 and not any("s3cr3t" in line for line in found)


@pytest.mark.parametrize(("url", "message"), [
    ("nats://127.0.0.1:99999", "--bus: port 99999 is out of range (1-65535)"),
    ("nats://:4222", "--bus: URL has no host (want nats://HOST[:PORT]/...)"),
    ("kafka://127.0.0.1:70000", "kafka broker address '127.0.0.1:70000': port 70000 is out of range (1-65535)"),
    ("ftp://127.0.0.1", "--bus: unsupported bus URL 'ftp://127.0.0.1' (want nats://HOST:PORT or kafka://HOST:PORT)"),
])
def test_bus_url_on_the_command_line(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_url(url)
    assert str(info.value) == message
