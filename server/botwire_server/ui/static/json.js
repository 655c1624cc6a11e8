// JSON as text, token by token. Numbers and strings keep their exact spelling, so a value
// is shown and saved as the server stored it: JSON.parse would round integers past 2^53
// and turn 1.0 into 1, which a Python reader would then see as an int.

const TOKEN = /\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{}[\],:])/y;

/** The tokens of valid JSON `text`, each {text, start, end}. */
export function* tokens(text) {
  const re = new RegExp(TOKEN.source, "y");
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    yield { text: m[1], start: re.lastIndex - m[1].length, end: re.lastIndex };
  }
}

const CLOSE = { "{": "}", "[": "]" };

/** `text` indented by two spaces, every token as it was. */
export function pretty(text) {
  return layout(text).map(([piece]) => piece).join("");
}

/**
 * `text` indented by two spaces, as [piece, kind] pairs; kind names a token ("key",
 * "string", "number", "literal") or is null for punctuation and white space.
 */
export function layout(text) {
  const list = [...tokens(text)];
  const out = [];
  let depth = 0;
  const newline = () => [`\n${"  ".repeat(depth)}`, null];
  for (let i = 0; i < list.length; i += 1) {
    const t = list[i].text;
    if (t in CLOSE) {
      if (list[i + 1]?.text === CLOSE[t]) {
        out.push([t + CLOSE[t], null]); // {} and [] stay on one line
        i += 1;
        continue;
      }
      depth += 1;
      out.push([t, null], newline());
    } else if (t === "}" || t === "]") {
      depth -= 1;
      out.push(newline(), [t, null]);
    } else if (t === ",") out.push([",", null], newline());
    else if (t === ":") out.push([": ", null]);
    else out.push([t, kind(t, list[i + 1]?.text)]);
  }
  return out;
}

function kind(token, next) {
  if (token[0] === '"') return next === ":" ? "key" : "string";
  return token[0] === "-" || (token[0] >= "0" && token[0] <= "9") ? "number" : "literal";
}

/** The text of the value of field `name` of the JSON object `text` (undefined if absent). */
export function field(text, name) {
  let depth = 0;
  let expectName = false;
  let match = false;
  let start = -1;
  let end = 0;
  for (const t of tokens(text)) {
    const c = t.text;
    if (depth === 1) {
      if (start >= 0 && (c === "," || c === "}")) return text.slice(start, end);
      if (expectName && c[0] === '"') {
        match = JSON.parse(c) === name;
        expectName = false;
      } else if (c === ",") expectName = true;
      else if (c !== ":" && match && start < 0) start = t.start;
    }
    if (c in CLOSE) {
      if (depth === 0) expectName = true;
      depth += 1;
    } else if (c === "}" || c === "]") depth -= 1;
    end = t.end;
  }
  return undefined;
}
