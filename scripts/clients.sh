#!/usr/bin/env bash
# Generates API clients from the gateway's OpenAPI 3.1 document with three widely used generators
# and checks them, so that a document generators choke on fails the tests:
#   - openapi-python-client (PyPI): a Python package; any warning (a skipped endpoint or model,
#     "Could not find reference", ...) is a failure, and every generated module must import;
#   - openapi-typescript (npm): TypeScript types; every valid example under EXAMPLES_DIR is written
#     as a literal typed with its component (DocumentEnvelope, or AcknowledgmentBody for
#     acknowledgments) and checked with `tsc --strict --noEmit`;
#   - @hey-api/openapi-ts (npm): a fetch SDK, compiled with `tsc --strict --noEmit` together with
#     the same examples typed with its own types.
# Usage:
#   eval "$(scripts/clients.sh install)"   pinned tools, cached in ~/.cache/ventanilla; prints the
#                                          `export` lines of VENTANILLA_TEST_CLIENT_TOOLS and
#                                          VENTANILLA_TEST_OPENAPI_PYTHON_CLIENT (progress on stderr)
#   scripts/clients.sh generate OPENAPI_JSON OUT_DIR EXAMPLES_DIR
#                                          writes OUT_DIR/python/ventanilla_client (importable with
#                                          PYTHONPATH=OUT_DIR/python), OUT_DIR/typescript and
#                                          OUT_DIR/hey-api; exits non-zero, saying why, on any failure
set -euo pipefail

OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
OPENAPI_TYPESCRIPT_VERSION=7.13.0
TYPESCRIPT_VERSION=5.9.3 # openapi-typescript 7 wants typescript ^5
HEY_API_VERSION=0.95.0   # the last @hey-api/openapi-ts that runs on Node 20 (0.96 wants Node 22)
NODE_MIN=20.19.0         # what @hey-api/openapi-ts 0.95 asks for

TOOLS_TAG="oat$OPENAPI_TYPESCRIPT_VERSION-ts$TYPESCRIPT_VERSION-hey$HEY_API_VERSION"
DEFAULT_TOOLS="$HOME/.cache/ventanilla/openapi-clients-$TOOLS_TAG"
PINS="openapi-typescript@$OPENAPI_TYPESCRIPT_VERSION typescript@$TYPESCRIPT_VERSION @hey-api/openapi-ts@$HEY_API_VERSION"

say() { printf 'clients.sh: %s\n' "$*" >&2; }
die() { printf 'clients.sh: FAILED: %s\n' "$*" >&2; exit 1; }

# The openapi-python-client executable that python3's pip installs (not a pyenv shim).
python_client_path() {
  python3 - <<'EOF'
import os, sysconfig
for scheme in (None, f"{os.name}_user"):
    d = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
    p = os.path.join(d, "openapi-python-client")
    if os.access(p, os.X_OK):
        print(p)
        break
EOF
}

python_client_version() {
  python3 -c 'import importlib.metadata as m; print(m.version("openapi-python-client"))' 2>/dev/null || true
}

install_python_client() {
  if [ "$(python_client_version)" = "$OPENAPI_PYTHON_CLIENT_VERSION" ] && [ -n "$(python_client_path)" ]; then
    say "openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION already installed"
  else
    say "installing openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION from PyPI"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check \
      "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION" >&2
    [ "$(python_client_version)" = "$OPENAPI_PYTHON_CLIENT_VERSION" ] \
      || die "pip did not install openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION"
  fi
  [ -n "$(python_client_path)" ] || die "openapi-python-client is installed but its executable was not found"
}

node_tools_ok() {
  local dir="$1"
  [ "$(cat "$dir/.pins" 2>/dev/null || true)" = "$PINS" ] \
    && [ -x "$dir/node_modules/.bin/openapi-typescript" ] \
    && [ -x "$dir/node_modules/.bin/tsc" ] \
    && [ -x "$dir/node_modules/.bin/openapi-ts" ]
}

install_node_tools() {
  local dir="$1"
  command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed (Debian: nodejs npm)"
  local node_version
  node_version="$(node -p 'process.versions.node')"
  if [ "$(printf '%s\n%s\n' "$NODE_MIN" "$node_version" | sort -V | head -n1)" != "$NODE_MIN" ]; then
    die "Node $node_version is too old: @hey-api/openapi-ts $HEY_API_VERSION needs Node >= $NODE_MIN"
  fi
  if node_tools_ok "$dir"; then
    say "$PINS already installed in $dir"
    return
  fi
  say "installing $PINS from the npm registry into $dir"
  mkdir -p "$(dirname "$dir")"
  local tmp
  tmp="$(mktemp -d "$dir.tmp.XXXXXX")"
  printf '{"name":"ventanilla-openapi-clients","private":true}\n' >"$tmp/package.json"
  # shellcheck disable=SC2086 # PINS is a list of package@version words
  (cd "$tmp" && npm install --no-audit --no-fund --loglevel=error --save-exact $PINS) >&2 \
    || { rm -rf "$tmp"; die "npm install $PINS failed"; }
  printf '%s' "$PINS" >"$tmp/.pins"
  node_tools_ok "$tmp" || { rm -rf "$tmp"; die "npm installed $PINS but a command is missing"; }
  # Another run may have finished first: keep its complete copy; replace an incomplete one.
  if node_tools_ok "$dir"; then
    rm -rf "$tmp"
  else
    rm -rf "$dir"
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  fi
  node_tools_ok "$dir" || die "the tools in $dir are incomplete"
}

cmd_install() {
  install_python_client
  local tools="${VENTANILLA_TEST_CLIENT_TOOLS:-$DEFAULT_TOOLS}"
  install_node_tools "$tools"
  printf 'export VENTANILLA_TEST_CLIENT_TOOLS=%q\n' "$tools"
  printf 'export VENTANILLA_TEST_OPENAPI_PYTHON_CLIENT=%q\n' "$(python_client_path)"
}

# Prints a command's captured output, indented, on stderr.
show() { sed 's/^/    /' "$1" >&2; }

# Whether a generator's log says more than its progress lines (which name the input and output
# paths, so those lines are not searched): a warning or an error, whatever the exit code.
complains() { grep -vF -e "$2" -e "$3" "$1" | grep -qiE 'warn|error|could not|unable|skipp|not supported|unsupported'; }

cmd_generate() {
  [ $# -eq 3 ] || die "usage: scripts/clients.sh generate OPENAPI_JSON OUT_DIR EXAMPLES_DIR"
  local spec out examples
  spec="$(realpath "$1")" || die "no OpenAPI document at $1"
  [ -f "$spec" ] || die "no OpenAPI document at $1"
  mkdir -p "$2"
  out="$(realpath "$2")"
  examples="$(realpath "$3")" || die "no examples directory at $3"
  [ -d "$examples" ] || die "no examples directory at $3"
  local tools="${VENTANILLA_TEST_CLIENT_TOOLS:-$DEFAULT_TOOLS}"
  local opc="${VENTANILLA_TEST_OPENAPI_PYTHON_CLIENT:-$(python_client_path)}"
  node_tools_ok "$tools" || die "the npm tools are not installed in $tools: run scripts/clients.sh install"
  [ -n "$opc" ] && [ -x "$opc" ] || die "openapi-python-client not found: run scripts/clients.sh install"
  local bin="$tools/node_modules/.bin"
  rm -rf "$out/python" "$out/typescript" "$out/hey-api" "$out/logs"
  mkdir -p "$out/python" "$out/typescript/examples" "$out/hey-api" "$out/logs"
  local failed=0 t0

  # --- (a) openapi-python-client ---------------------------------------------------------------
  t0=$SECONDS
  local pylog="$out/logs/openapi-python-client.log"
  # openapi-python-client has no body type for NDJSON (POST /v1/documents:batch takes it beside
  # JSON): without this it skips the whole endpoint with a warning.
  printf 'content_type_overrides:\n  application/x-ndjson: application/octet-stream\n' \
    >"$out/logs/openapi-python-client.yaml"
  if ! "$opc" generate --path "$spec" --output-path "$out/python/ventanilla_client" --meta none \
    --config "$out/logs/openapi-python-client.yaml" --overwrite --fail-on-warning >"$pylog" 2>&1; then
    say "openapi-python-client failed:"; show "$pylog"; failed=1
  elif complains "$pylog" "$spec" "$out"; then
    say "openapi-python-client warned (treated as a failure):"; show "$pylog"; failed=1
  elif ! (cd "$out/python" && python3 - >"$out/logs/python-import.log" 2>&1 <<'EOF'
import importlib, pkgutil, ventanilla_client
n = 0
for m in pkgutil.walk_packages(ventanilla_client.__path__, "ventanilla_client."):
    importlib.import_module(m.name)
    n += 1
from ventanilla_client.api.documents import submit_document, amend_document
from ventanilla_client.api.consignments import consignment
from ventanilla_client.models import DocumentEnvelope
print(n, "modules")
EOF
  ); then
    say "the Python client generated by openapi-python-client does not import:"; show "$out/logs/python-import.log"; failed=1
  else
    say "openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION: generated $out/python/ventanilla_client without a warning, $(cat "$out/logs/python-import.log") imported ($((SECONDS - t0)) s)"
  fi

  # --- the examples, each as a TypeScript module per generator ---------------------------------
  # Which component each valid example is: a submission envelope (documentType and payload) is a
  # DocumentEnvelope; the acknowledgments are an agency's AcknowledgmentBody.
  local listing="$out/logs/examples.tsv"
  python3 - "$examples" "$out" >"$listing" <<'EOF' || die "cannot read the examples in $examples"
import json, pathlib, re, sys
examples, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
files = sorted(examples.glob("*/valid/*.json"))
if not files:
    sys.exit(f"no examples/*/valid/*.json in {examples}")
for f in files:
    doc = json.loads(f.read_text())
    if isinstance(doc, dict) and "documentType" in doc and "payload" in doc:
        component = "DocumentEnvelope"
    elif f.parent.parent.name == "acknowledgment":
        component = "AcknowledgmentBody"
    else:
        sys.exit(f"{f}: neither a submission envelope nor an acknowledgment")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{f.parent.parent.name}--{f.stem}")
    literal = json.dumps(doc, indent=2, ensure_ascii=False)
    (out / "typescript/examples" / f"{name}.ts").write_text(
        f"// {f}\nimport type {{ components }} from \"../schema\";\n\n"
        f"export const example: components[\"schemas\"][\"{component}\"] = {literal};\n")
    (out / "hey-api/examples").mkdir(parents=True, exist_ok=True)
    (out / "hey-api/examples" / f"{name}.ts").write_text(
        f"// {f}\nimport type {{ {component} }} from \"../client\";\n\n"
        f"export const example: {component} = {literal};\n")
    print(f"{name}\t{component}\t{f}")
EOF
  local n_examples
  n_examples="$(wc -l <"$listing")"

  # tsc over a directory; a failure names each example it is about, then tsc's errors.
  tsc_check() {
    local dir="$1" what="$2" log="$out/logs/tsc-$3.log"
    cat >"$dir/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "target": "ES2022",
    "module": "ESNext",
    "moduleResolution": "Bundler",
    "lib": ["ES2022", "DOM", "DOM.Iterable"],
    "types": [],
    "skipLibCheck": false
  }
}
EOF
    if (cd "$dir" && "$bin/tsc" -p tsconfig.json --strict --noEmit --pretty false) >"$log" 2>&1; then
      return 0
    fi
    say "tsc --strict --noEmit failed on $what:"
    local name component file
    while IFS=$'\t' read -r name component file; do
      if grep -q "^examples/$name\.ts" "$log"; then
        say "  example $file (as $component):"
        grep -A3 "^examples/$name\.ts" "$log" | head -n 12 | cut -c1-400 | sed 's/^/      /' >&2
      fi
    done <"$listing"
    if grep -v '^examples/' "$log" | grep -q 'error TS' || ! grep -q '^examples/' "$log"; then
      say "  outside the examples:"
      grep -v '^examples/' "$log" | grep -v '^ ' | head -n 40 | cut -c1-400 | sed 's/^/      /' >&2
    fi
    return 1
  }

  # What a TypeScript generator ran into, once it ran: a warning, no output, or tsc's refusal;
  # else what it made. Usage: judged NAME LOG WROTE TSC_DIR TSC_LABEL TSC_TAG OK_MESSAGE
  judged() {
    if complains "$2" "$spec" "$out"; then
      say "$1 warned (treated as a failure):"; show "$2"; return 1
    elif [ ! -s "$3" ]; then
      say "$1 wrote no $(basename "$3"):"; show "$2"; return 1
    elif ! tsc_check "$4" "$5" "$6"; then
      return 1
    fi
    say "$7"
  }

  # --- (b) openapi-typescript ------------------------------------------------------------------
  t0=$SECONDS
  local otlog="$out/logs/openapi-typescript.log"
  if ! "$bin/openapi-typescript" "$spec" --output "$out/typescript/schema.d.ts" >"$otlog" 2>&1; then
    say "openapi-typescript failed:"; show "$otlog"; failed=1
  elif ! judged openapi-typescript "$otlog" "$out/typescript/schema.d.ts" "$out/typescript" "openapi-typescript's types" openapi-typescript \
    "openapi-typescript $OPENAPI_TYPESCRIPT_VERSION: $out/typescript/schema.d.ts; tsc $TYPESCRIPT_VERSION --strict accepts all $n_examples valid examples typed with it ($((SECONDS - t0)) s)"; then
    failed=1
  fi

  # --- (c) @hey-api/openapi-ts -----------------------------------------------------------------
  t0=$SECONDS
  local helog="$out/logs/hey-api.log"
  if ! (cd "$out/hey-api" && "$bin/openapi-ts" --input "$spec" --output "$out/hey-api/client" \
    --logs "$out/logs" --plugins @hey-api/client-fetch @hey-api/typescript @hey-api/sdk) >"$helog" 2>&1; then
    say "@hey-api/openapi-ts failed:"; show "$helog"; failed=1
  elif ! judged @hey-api/openapi-ts "$helog" "$out/hey-api/client/index.ts" "$out/hey-api" "the @hey-api/openapi-ts client" hey-api \
    "@hey-api/openapi-ts $HEY_API_VERSION: $out/hey-api/client compiles with tsc --strict, and so do all $n_examples valid examples typed with it ($((SECONDS - t0)) s)"; then
    failed=1
  fi

  [ "$failed" -eq 0 ] || die "the API clients generated from $spec do not pass (logs in $out/logs)"
  say "OK: $spec gives a Python client, TypeScript types and a TypeScript SDK that generate without a warning and type-check with all $n_examples valid examples"
}

case "${1:-}" in
  install) shift; [ $# -eq 0 ] || die "usage: scripts/clients.sh install"; cmd_install ;;
  generate) shift; cmd_generate "$@" ;;
  *) die "usage: scripts/clients.sh install | scripts/clients.sh generate OPENAPI_JSON OUT_DIR EXAMPLES_DIR" ;;
esac
