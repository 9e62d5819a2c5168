// drover driven by the official `ollama` and `openai` npm clients.
// usage: node compat.mjs http://127.0.0.1:PORT MODEL
import { Ollama } from "ollama";
import OpenAI from "openai";
import assert from "node:assert/strict";

const [url, model] = process.argv.slice(2);
let passed = 0, failed = 0;
async function check(name, fn) {
  try { await fn(); passed++; }
  catch (e) { failed++; console.error(`FAIL: ${name}: ${e.stack || e}`); }
}

const ollama = new Ollama({ host: url });
const openai = new OpenAI({ baseURL: url + "/v1", apiKey: "unused", maxRetries: 0 });

await check("ollama.list", async () => {
  const r = await ollama.list();
  assert.ok(r.models.some((m) => m.name === model + ":latest"));
});
await check("ollama.generate non-stream", async () => {
  const r = await ollama.generate({ model, prompt: "Once upon a time", options: { temperature: 0, num_predict: 12 } });
  assert.ok(r.response.startsWith(", there was a little girl"), r.response);
  assert.equal(r.done, true);
  assert.equal(r.eval_count, 12);
  assert.equal(r.done_reason, "length");
});
await check("ollama.generate stream", async () => {
  const it = await ollama.generate({ model, prompt: "Once upon a time", stream: true, options: { temperature: 0, num_predict: 12 } });
  let text = "", last;
  for await (const part of it) { text += part.response; last = part; }
  assert.ok(text.startsWith(", there was a little girl"), text);
  assert.equal(last.done, true);
  assert.equal(last.eval_count, 12);
});
await check("ollama.chat stream", async () => {
  const it = await ollama.chat({ model, messages: [{ role: "user", content: "Once upon a time" }], stream: true, options: { temperature: 0, num_predict: 8 } });
  let text = "", n = 0;
  for await (const part of it) { text += part.message.content; n++; assert.equal(part.message.role, "assistant"); }
  assert.ok(n >= 2 && text.length > 0);
});
// COMPAT_NO_DETAILS=1: the server is a gateway in front of an OpenAI-API node,
// which names its models but says nothing of their architecture
await check("ollama.show", async () => {
  const r = await ollama.show({ model });
  if (process.env.COMPAT_NO_DETAILS) return;
  assert.equal(r.details.family, "llama");
  assert.equal(r.model_info["general.architecture"], "llama");
});
await check("ollama.ps", async () => {
  const r = await ollama.ps();
  assert.ok(r.models.some((m) => m.name === model + ":latest" && m.size_vram === 0));
});
await check("ollama unknown model throws 404", async () => {
  await assert.rejects(ollama.generate({ model: "no-such-model", prompt: "x" }), (e) => e.status_code === 404);
});
await check("ollama abort mid-stream", async () => {
  const it = await ollama.generate({ model, prompt: "Once upon a time", stream: true, options: { num_predict: 100000 } });
  let n = 0;
  for await (const part of it) { if (++n === 3) { it.abort(); break; } }
  assert.equal(n, 3);
});
await check("openai.models.list", async () => {
  const r = await openai.models.list();
  assert.ok(r.data.some((m) => m.id === model + ":latest"));
});
await check("openai chat non-stream", async () => {
  const r = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 10, temperature: 0 });
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 10);
});
await check("openai chat stream with usage", async () => {
  const s = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = "", usage, finish;
  for await (const c of s) {
    if (c.choices[0]?.delta?.content) text += c.choices[0].delta.content;
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    if (c.usage) usage = c.usage;
  }
  assert.ok(text.length > 0);
  assert.equal(finish, "length");
  assert.equal(usage.completion_tokens, 10);
});
await check("openai completions", async () => {
  const r = await openai.completions.create({ model, prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
  assert.ok(r.choices[0].text.startsWith(", there was a little girl"), r.choices[0].text);
});
await check("openai unknown model throws NotFound", async () => {
  await assert.rejects(openai.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }),
    (e) => e.status === 404);
});
await check("ollama.embed", async () => {
  const r = await ollama.embed({ model, input: ["hello world", "Once upon a time"] });
  assert.equal(r.embeddings.length, 2);
  assert.equal(r.embeddings[0].length, 64);
});
await check("openai.embeddings.create (base64 by default)", async () => {
  const r = await openai.embeddings.create({ model, input: "hello world" });
  assert.equal(r.data[0].embedding.length, 64);
  assert.ok(Math.abs(Math.hypot(...r.data[0].embedding) - 1) < 1e-4);
});
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
