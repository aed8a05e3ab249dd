// The official OpenAI Node client (npm package `openai`, fetched into .deps/node_modules/openai by
// scripts/setup.sh) against a running `modelone serve --model tiny`:
//   node tests/openai_client_test.mjs http://127.0.0.1:PORT/v1 [CHAT_URL]
// Checks models.list, a whole and a streamed completion (token-id prompt, ignore_eos, usage) with
// equal ids, chat on a model without a tokenizer (BadRequestError 400) and an unknown model
// (NotFoundError 404). Prints one JSON line with the results and exits 0, or says what failed and
// exits 1 (2: bad usage or no client to import).
import { fileURLToPath } from 'node:url';

const dir = new URL('../.deps/node_modules/openai/', import.meta.url);
const baseURL = process.argv[2];
if (!baseURL) {
  console.error('usage: node tests/openai_client_test.mjs BASE_URL (e.g. http://127.0.0.1:8000/v1)');
  process.exit(2);
}
let OpenAI, VERSION;
try {
  // By path: ESM imports do not look at NODE_PATH.
  ({ default: OpenAI } = await import(new URL('index.mjs', dir)));
  ({ VERSION } = await import(new URL('version.mjs', dir)));
} catch (e) {
  console.error(`openai_client_test: cannot import the openai package from ${fileURLToPath(dir)} ` +
                `(run scripts/setup.sh): ${e.message}`);
  process.exit(2);
}

function check(ok, what, got) {
  if (!ok) throw new Error(`${what}${got === undefined ? '' : `; got ${JSON.stringify(got)}`}`);
}

// The call must fail with the given error class and status; returns the error.
async function rejects(promise, cls, status, what) {
  try {
    const r = await promise;
    throw new Error(`${what}: expected ${cls.name} (${status}), but it succeeded: ${JSON.stringify(r)}`);
  } catch (e) {
    if (e instanceof cls && e.status === status) return e;
    if (e instanceof OpenAI.APIError)
      throw new Error(`${what}: expected ${cls.name} (${status}), got ${e.constructor.name} status ${e.status}: ` +
                      `${e.message}; body ${JSON.stringify(e.error)}`);
    throw e;
  }
}

const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
const prompt = [5, 6, 7];
const n = 5;

try {
  // (a) the model list
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  check(models.includes('tiny'), "models.list() has no 'tiny'", models);

  // (b) a whole completion; ignore_eos is not in the client's types but goes in the body as is
  const whole = await client.completions.create({ model: 'tiny', prompt, max_tokens: n, ignore_eos: true });
  check(whole.object === 'text_completion', 'completion object', whole.object);
  check(whole.choices?.length === 1, 'completion: one choice', whole.choices);
  const c = whole.choices[0];
  check(c.finish_reason === 'length', "completion finish_reason 'length'", c.finish_reason);
  check(Array.isArray(c.token_ids) && c.token_ids.length === n, `completion: ${n} token_ids`, c.token_ids);
  check(whole.usage?.completion_tokens === n, `completion usage.completion_tokens ${n}`, whole.usage);
  check(whole.usage?.prompt_tokens === prompt.length, `completion usage.prompt_tokens ${prompt.length}`, whole.usage);

  // (c) the same streamed, with the usage chunk at the end
  const stream = await client.completions.create({
    model: 'tiny', prompt, max_tokens: n, ignore_eos: true, stream: true, stream_options: { include_usage: true },
  });
  const streamed = [];
  let chunks = 0, usage = null, finish = null;
  for await (const chunk of stream) {
    ++chunks;
    check(usage === null, 'a chunk after the usage chunk', chunk);
    for (const ch of chunk.choices ?? []) {
      check(ch.index === 0, 'stream: choice index 0', ch.index);
      streamed.push(...(ch.token_ids ?? []));
      if (ch.finish_reason) finish = ch.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  check(usage !== null, 'stream: no usage chunk (stream_options.include_usage)');
  check(usage.completion_tokens === n, `stream usage.completion_tokens ${n}`, usage);
  check(finish === 'length', "stream finish_reason 'length'", finish);
  check(JSON.stringify(streamed) === JSON.stringify(c.token_ids), 'streamed token_ids equal the whole answer\'s',
        { streamed, whole: c.token_ids });

  // (d) chat needs a tokenizer, which tiny has not
  const chat = await rejects(client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }] }),
                             OpenAI.BadRequestError, 400, 'chat on tiny');
  check(/tokenizer/i.test(chat.message), 'chat error message mentions the tokenizer', chat.message);

  // (e) an unknown model
  const missing = await rejects(client.completions.create({ model: 'no-such-model', prompt, max_tokens: 1 }),
                                OpenAI.NotFoundError, 404, 'unknown model');

  // (f) with a second server whose model has a tokenizer (CHAT_URL, model 'chat'): a whole and a
  // streamed chat completion; the streamed pieces join into the whole answer's text.
  let chatted = null;
  if (process.argv[3]) {
    const cc = new OpenAI({ baseURL: process.argv[3], apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }];
    const w = await cc.chat.completions.create({ model: 'chat', messages, max_tokens: n, ignore_eos: true });
    check(w.object === 'chat.completion', 'chat object', w.object);
    const m = w.choices[0].message;
    check(m.role === 'assistant' && typeof m.content === 'string', 'chat message', m);
    check(w.usage?.completion_tokens === n, `chat usage.completion_tokens ${n}`, w.usage);
    const st = await cc.chat.completions.create({ model: 'chat', messages, max_tokens: n, ignore_eos: true, stream: true });
    let text = '', role = null, fin = null;
    const ids = [];
    for await (const chunk of st) {
      const d = chunk.choices[0]?.delta ?? {};
      if (d.role) role = d.role;
      text += d.content ?? '';
      ids.push(...(chunk.choices[0]?.token_ids ?? []));
      if (chunk.choices[0]?.finish_reason) fin = chunk.choices[0].finish_reason;
    }
    check(role === 'assistant' && fin === 'length', 'chat stream role and finish', { role, fin });
    check(text === m.content, 'streamed chat text equals the whole answer\'s', { text, whole: m.content });
    chatted = { token_ids: w.choices[0].token_ids, content: m.content, stream_token_ids: ids, usage: w.usage };
  }

  console.log(JSON.stringify({
    openai: VERSION, node: process.version, models, chat: chatted,
    completion: { token_ids: c.token_ids, finish_reason: c.finish_reason, usage: whole.usage },
    stream: { token_ids: streamed, chunks, finish_reason: finish, usage },
    chat_error: { status: chat.status, type: chat.type, message: chat.message },
    not_found: { status: missing.status, type: missing.type, message: missing.message },
  }));
} catch (e) {
  const extra = e instanceof OpenAI.APIError && e.status !== undefined ? ` (status ${e.status}, body ${JSON.stringify(e.error)})`
              : e.cause ? ` (${e.cause.message ?? e.cause})` : '';
  console.error(`openai_client_test: FAIL: ${e.message}${extra}`);
  process.exit(1);
}
