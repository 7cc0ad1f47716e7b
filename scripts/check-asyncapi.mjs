// Validates an AsyncAPI document with the maintained parser (@asyncapi/parser, from the npm
// registry, installed by scripts/test.sh under $ASYNCAPI_PARSER_DIR): prints every diagnostic,
// exits 1 on an error, else prints the version, the servers, the channels' addresses, the operations'
// count and each message's Kafka key binding as the parser read it.
// Usage: ASYNCAPI_PARSER_DIR=DIR node scripts/check-asyncapi.mjs FILE
import { createRequire } from 'node:module';
import fs from 'node:fs';

const require = createRequire(`${process.env.ASYNCAPI_PARSER_DIR}/`);
const { Parser } = require('@asyncapi/parser');
const parser = new Parser();
const { document, diagnostics } = await parser.parse(fs.readFileSync(process.argv[2], 'utf8'));
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  console.error(`${['error', 'warning', 'info', 'hint'][d.severity]} ${d.code} ${JSON.stringify(d.path)}: ${d.message}`);
}
if (!document || errors.length) {
  console.error(`${errors.length} error(s)`);
  process.exit(1);
}
console.log(JSON.stringify({
  version: document.version(),
  channels: document.channels().all().map((c) => c.address()),
  operations: document.operations().all().length,
  servers: document.servers().all().map((s) => ({ host: s.host(), protocol: s.protocol() })),
  keys: Object.fromEntries(document.messages().all().map((m) => [m.id(), m.bindings().get('kafka')?.value()?.key ?? null])),
}));
