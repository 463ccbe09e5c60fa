/**
 * Ollama's `format: "json"` as a GBNF grammar: any JSON object (llama.cpp's grammars/json.gbnf, rooted at an
 * object). A grammar, not response_format: llama-server ignores a bare json_object on chat, and on this build a
 * schema on chat goes through the chat template's grammar builder, which fails on some templates ("Failed to
 * initialize samplers"); a grammar is enforced the same way on chat and completions.
 */
export const JSON_OBJECT_GRAMMAR = String.raw`root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws     ::= | " " | "\n" [ \t]{0,20}
`;
