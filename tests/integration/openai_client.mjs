// openai_client.mjs - drives quantgate's /v1 endpoint with the official
// `openai` npm package (installed in web/node_modules by scripts/deps.sh),
// for tests/integration/test_openai_api.py.
//
//   node openai_client.mjs SCENARIO
//
// The scenario's input comes as JSON on stdin: {"baseURL", "apiKey",
// "model", ...}; the result is one JSON object on stdout. An SDK exception
// is not a failure of this script: it is reported as {"error": {"class",
// "status", "code", "type", "message"}} so the test can assert on the typed
// exception the SDK chose. Anything else (a bug here, the package missing)
// exits non-zero with the reason on stderr.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const webDir = process.env.QG_WEB_DIR || join(here, '..', '..', 'web');
let sdk;
try {
  sdk = createRequire(join(webDir, 'package.json'))('openai');
} catch (e) {
  process.stderr.write(
    `openai_client.mjs: the openai package is not installed in ${webDir}/node_modules ` +
      `(run scripts/deps.sh, or npm ci --prefix web): ${e.message}\n`,
  );
  process.exit(3);
}
const { OpenAI } = sdk;

const scenario = process.argv[2];
const input = JSON.parse(readFileSync(0, 'utf8') || '{}');
const client = new OpenAI({
  baseURL: input.baseURL,
  apiKey: input.apiKey,
  maxRetries: 0, // every status must reach the test as it was sent
  timeout: 30000,
});

function errorInfo(e) {
  if (!(e instanceof sdk.OpenAIError)) throw e;
  return {
    error: {
      class: e.constructor.name,
      status: e.status ?? null,
      code: e.code ?? null,
      type: e.type ?? null,
      message: e.message,
    },
  };
}

// Reassembles a streamed answer the way an application would: text
// fragments joined, tool calls merged by index.
async function collect(stream) {
  const out = { id: null, model: null, text: '', chunks: 0, roles: [], finish_reason: null, usage: null, tool_calls: [] };
  const ids = new Set();
  for await (const chunk of stream) {
    out.chunks++;
    ids.add(chunk.id);
    out.model = chunk.model;
    if (chunk.object !== 'chat.completion.chunk') throw new Error(`chunk object ${chunk.object}`);
    if (chunk.usage) out.usage = chunk.usage;
    for (const choice of chunk.choices || []) {
      const d = choice.delta || {};
      if (d.role) out.roles.push(d.role);
      if (d.content) out.text += d.content;
      for (const tc of d.tool_calls || []) {
        const slot = (out.tool_calls[tc.index] ||= { id: null, name: '', arguments: '' });
        if (tc.id) slot.id = tc.id;
        if (tc.function?.name) slot.name += tc.function.name;
        if (tc.function?.arguments) slot.arguments += tc.function.arguments;
      }
      if (choice.finish_reason) out.finish_reason = choice.finish_reason;
    }
  }
  out.ids = [...ids];
  return out;
}

const messages = input.messages || [{ role: 'user', content: input.prompt || 'hello there' }];

const scenarios = {
  async models() {
    const page = await client.models.list();
    const ids = [];
    for await (const m of page) ids.push({ id: m.id, object: m.object, owned_by: m.owned_by, created: m.created });
    return { models: ids };
  },
  async retrieve() {
    const m = await client.models.retrieve(input.model);
    return { model: m };
  },
  async chat() {
    const { data, response } = await client.chat.completions
      .create({ model: input.model, messages, tools: input.tools })
      .withResponse();
    return {
      completion: data,
      overhead_ms: response.headers.get('x-quantgate-overhead-ms'),
    };
  },
  async stream() {
    const stream = await client.chat.completions.create({
      model: input.model,
      messages,
      tools: input.tools,
      stream: true,
      stream_options: input.include_usage ? { include_usage: true } : undefined,
    });
    return await collect(stream);
  },
  // A tool call streamed, its arguments reassembled, the tool's result sent
  // back, and the final answer streamed.
  async tool_round_trip() {
    const first = await collect(
      await client.chat.completions.create({ model: input.model, messages, tools: input.tools, stream: true }),
    );
    const calls = first.tool_calls.filter(Boolean);
    const followup = [
      ...messages,
      {
        role: 'assistant',
        content: null,
        tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
      },
      ...calls.map((c) => ({ role: 'tool', tool_call_id: c.id, content: input.tool_result })),
    ];
    const second = await collect(
      await client.chat.completions.create({ model: input.model, messages: followup, tools: input.tools, stream: true }),
    );
    return { first, second };
  },
};

const fn = scenarios[scenario];
if (!fn) {
  process.stderr.write(`openai_client.mjs: unknown scenario '${scenario}' (${Object.keys(scenarios).join(', ')})\n`);
  process.exit(2);
}
let result;
try {
  result = await fn();
} catch (e) {
  result = errorInfo(e);
}
process.stdout.write(JSON.stringify(result) + '\n');
