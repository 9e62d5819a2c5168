// A scripted Ollama-API node for the fleet tests: answers like Ollama, but
// slowly and predictably, so that a test can kill it mid-stream or make it
// answer with reasoning only. Prints "listening on PORT" when ready.
//
//   node fake_node.mjs [--port P] [--interval MS] [--tokens N] [--prefix P]
//                      [--stall-after K] [--first-delay MS]
//
// Models: "slow:latest" streams N tokens "t0 t1 ..." one every MS ms;
// "thinker:latest" streams N thinking pieces and ends with done_reason
// "length" and no content (a thinking model that ran out of budget).
// GET /last returns the last generation request body it received.
// --stall-after K: after K tokens the answer goes silent, the connection open
// (a node that hangs mid-answer).
// --first-delay MS: nothing at all (not even headers) for MS ms, as a node
// reading a long prompt.
import http from "node:http";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const interval = opt("--interval", 50);
const pi = args.indexOf("--prefix");
const prefix = pi >= 0 ? args[pi + 1] : ""; // names its models "<prefix>slow", ...
const tokens = opt("--tokens", 40);
const stallAfter = opt("--stall-after", -1);
const firstDelay = opt("--first-delay", 0);
let last = "{}";

const details = (q) => ({ format: "gguf", family: "llama", families: ["llama"], parameter_size: "1M", quantization_level: q });
const models = [
  { name: prefix + "slow:latest", model: prefix + "slow:latest", size: 1000, digest: "", modified_at: "2026-01-01T00:00:00Z", details: details("F32") },
  { name: prefix + "thinker:latest", model: prefix + "thinker:latest", size: 1000, digest: "", modified_at: "2026-01-01T00:00:00Z", details: details("F16") },
];

const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const json = (code, o) => {
      res.writeHead(code, { "Content-Type": "application/json" });
      res.end(JSON.stringify(o));
    };
    if (req.url === "/api/version") return json(200, { version: "0.12.0" });
    if (req.url === "/api/tags") return json(200, { models });
    if (req.url === "/api/ps") return json(200, { models: [] });
    if (req.url === "/last") return json(200, JSON.parse(last));
    if (req.url !== "/api/chat" && req.url !== "/api/generate") return json(404, { error: "not found" });
    last = body;
    const r = JSON.parse(body);
    const chat = req.url === "/api/chat";
    const name = r.model.slice(prefix.length);
    const thinker = r.model.startsWith(prefix) && name.startsWith("thinker");
    if (!r.model.startsWith(prefix) || (!name.startsWith("slow") && !thinker)) return json(404, { error: `model "${r.model}" not found` });
    setTimeout(() => answer(r, chat, thinker), firstDelay);
  });
  const answer = (r, chat, thinker) => {
    res.writeHead(200, { "Content-Type": "application/x-ndjson" });
    const t0 = Date.now();
    let i = 0;
    const piece = (text) => {
      const o = { model: r.model, created_at: new Date().toISOString(), done: false };
      const field = thinker ? "thinking" : chat ? "content" : "response";
      if (chat) o.message = { role: "assistant", content: "", [field]: text };
      else o[field] = text, thinker && (o.response = "");
      return JSON.stringify(o) + "\n";
    };
    const timer = setInterval(() => {
      if (i === stallAfter) return; /* silent from here on */
      if (i < tokens) {
        res.write(piece(`t${i} `));
        i++;
        return;
      }
      clearInterval(timer);
      const ns = (Date.now() - t0) * 1e6;
      const done = { model: r.model, created_at: new Date().toISOString(), done: true,
        done_reason: thinker ? "length" : "stop", total_duration: ns, load_duration: 0,
        prompt_eval_count: 5, prompt_eval_duration: 1000000, eval_count: tokens, eval_duration: ns };
      if (chat) done.message = { role: "assistant", content: "" };
      else done.response = "";
      res.end(JSON.stringify(done) + "\n");
    }, interval);
    res.on("close", () => clearInterval(timer));
  };
});
server.listen(opt("--port", 0), "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
