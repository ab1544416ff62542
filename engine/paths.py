"""Path expressions into event data and context (kernel): Argo's gjson-style paths, JSONPath and JMESPath.

CONTRACT (implementation in progress):
    PathResult: exists: bool; kind: "String"|"Number"|"True"|"False"|"Null"|"JSON"; raw: str (JSON text of the
        value); value: Any (python value). Methods string()/float()/bool() follow gjson's Result.String/Float/Bool.
    gjson_get(doc: bytes | str, path: str) -> PathResult
    PathExpr.compile(path=..., json_path=..., jmes_path=...) -> PathExpr; PathExpr.get(doc: bytes) -> PathResult
        JSONPath singular query -> that value or missing; other JSONPath -> list of matches (kind JSON);
        JMESPath null -> missing.
"""
