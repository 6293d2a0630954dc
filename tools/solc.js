#!/usr/bin/env node
// Stand-in for a native `solc` binary, backed by the npm `solc` module (solcjs).
//
// Native solc cannot be downloaded on our machines, and the `solcjs` CLI cannot stand in for it
// (it prints a banner before the JSON, truncates large output through a pipe, rejects
// --allow-paths and has no import callback without --base-path). This script speaks enough of
// the native CLI for py-solc-x, brownie, forge (`--use tools/solc.js`) and slither:
//
//   solc --version                       answered without loading the compiler (cached line)
//   solc --help                          minimal, includes the --combined-json line py-solc-x parses
//   solc [--base-path P] [--include-path P]... [--allow-paths a,b] --standard-json [< input.json]
//   solc [remap=target]... --combined-json abi,bin,... [--optimize] [--optimize-runs N]
//        [--evm-version V] [--output-dir D [--overwrite]] file.sol... | -
//
// Imports are resolved by a callback that looks in, in order: the path itself if absolute, the
// base path (default: cwd), each include path, each allowed path, and cwd; remappings from the
// input JSON / command line are applied again as a fallback. Output is written in one write and
// Node exits by itself (never process.exit after writing: that is what truncates solcjs output).
// SOLC_WRAPPER_LOG=/path/file appends each standard-json call's flags and settings there.
'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const SOLC_DIR = path.join(ROOT, 'node_modules', 'solc');
const CACHE_FILE = path.join(ROOT, 'node_modules', '.cache', 'plimsoll-solc-version.json');

let solcModule = null;
function loadSolc() {
  if (!solcModule) solcModule = require(SOLC_DIR);
  return solcModule;
}

function fail(msg, code) {
  process.stderr.write(msg.endsWith('\n') ? msg : msg + '\n');
  process.exitCode = code === undefined ? 1 : code;
}

// --- version ------------------------------------------------------------------------------------

// Long version as native solc prints it, e.g. "0.8.28+commit.7893614a.Linux.g++".
function longVersion() {
  let pkgVersion = null;
  let stamp = null;
  try {
    pkgVersion = JSON.parse(fs.readFileSync(path.join(SOLC_DIR, 'package.json'), 'utf8')).version;
    stamp = `${pkgVersion}:${fs.statSync(path.join(SOLC_DIR, 'soljson.js')).size}`;
    const cached = JSON.parse(fs.readFileSync(CACHE_FILE, 'utf8'));
    if (cached.stamp === stamp && cached.version) return cached.version;
  } catch (e) {
    /* no cache yet: compute below */
  }
  // Slow path (~0.5 s): ask the compiler itself, then cache.
  const v = loadSolc().version().replace(/\.Emscripten\.clang$/, '.Linux.g++');
  if (stamp) {
    try {
      fs.mkdirSync(path.dirname(CACHE_FILE), { recursive: true });
      const tmp = `${CACHE_FILE}.${process.pid}`;
      fs.writeFileSync(tmp, JSON.stringify({ stamp, version: v }));
      fs.renameSync(tmp, CACHE_FILE);
    } catch (e) {
      /* read-only tree: fine, just slower */
    }
  }
  return v;
}

// --- argument parsing ---------------------------------------------------------------------------

const TAKES_VALUE = new Set([
  '--base-path', '--include-path', '--allow-paths', '--combined-json', '--output-dir',
  '--optimize-runs', '--evm-version', '--libraries', '--revert-strings', '--debug-info',
  '--yul-optimizations', '--model-checker-engine', '--model-checker-targets',
  '--model-checker-timeout', '--model-checker-contracts', '--model-checker-solvers',
  '--model-checker-invariants', '--model-checker-ext-calls', '--model-checker-div-mod-nonlinear',
  '--model-checker-show-proved-safe', '--model-checker-show-unproved',
  '--model-checker-show-unsupported', '--model-checker-print-query', '--json-indent', '--stop-after', '--eof-version', '--import-asm-json',
]);
// Flags that take no value that we accept (and mostly ignore).
const BOOLEAN_FLAGS = new Set([
  '--version', '--help', '--standard-json', '--optimize', '--no-optimize-yul', '--optimize-yul',
  '--overwrite', '--via-ir', '--experimental-via-ir', '--metadata-literal', '--no-color',
  '--color', '--error-codes', '--ignore-missing', '--pretty-json', '--link', '--abi', '--bin',
  '--bin-runtime', '--hashes', '--userdoc', '--devdoc', '--metadata', '--storage-layout',
  '--asm', '--asm-json', '--opcodes', '--ir', '--ir-optimized', '--ast-compact-json',
  '--import-ast', '--no-cbor-metadata', '--strict-assembly', '--yul', '--assemble', '--lsp',
]);

function parseArgs(argv) {
  const opts = {
    basePath: null, includePaths: [], allowPaths: [], combinedJson: null, outputDir: null,
    optimizeRuns: null, evmVersion: null, flags: new Set(), remappings: [], files: [],
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let val = null;
    if (a.startsWith('--') && a.includes('=')) {
      val = a.slice(a.indexOf('=') + 1);
      a = a.slice(0, a.indexOf('='));
    }
    if (a.startsWith('--') && TAKES_VALUE.has(a)) {
      if (val === null) {
        val = argv[++i];
        if (val === undefined) throw new Error(`Option ${a} needs a value`);
      }
      switch (a) {
        case '--base-path': opts.basePath = val; break;
        case '--include-path': opts.includePaths.push(val); break;
        case '--allow-paths': opts.allowPaths.push(...val.split(',').filter(Boolean)); break;
        case '--combined-json': opts.combinedJson = val.split(',').filter(Boolean); break;
        case '--output-dir': opts.outputDir = val; break;
        case '--optimize-runs': opts.optimizeRuns = parseInt(val, 10); break;
        case '--evm-version': opts.evmVersion = val; break;
        default: break; // accepted and ignored
      }
    } else if (a.startsWith('--')) {
      if (!BOOLEAN_FLAGS.has(a) && !TAKES_VALUE.has(a)) {
        throw new Error(`unrecognised option '${a}'`);
      }
      opts.flags.add(a);
    } else if (a === '-') {
      opts.files.push('-');
    } else if (a.includes('=') && !fs.existsSync(a)) {
      opts.remappings.push(a);
    } else {
      opts.files.push(a);
    }
  }
  return opts;
}

// --- import callback ----------------------------------------------------------------------------

function makeImportCallback(opts, remappings) {
  const cwd = process.cwd();
  const roots = [];
  const addRoot = (p) => {
    if (!p) return;
    const r = path.resolve(cwd, p);
    if (!roots.includes(r)) roots.push(r);
  };
  addRoot(opts.basePath || cwd);
  opts.includePaths.forEach(addRoot);
  opts.allowPaths.forEach((p) => {
    try {
      if (fs.statSync(path.resolve(cwd, p)).isDirectory()) addRoot(p);
    } catch (e) { /* ignore missing allow-paths */ }
  });
  addRoot(cwd);

  const remaps = (remappings || [])
    .map((r) => {
      // [context:]prefix=target
      const eq = r.indexOf('=');
      if (eq < 0) return null;
      let prefix = r.slice(0, eq);
      const colon = prefix.indexOf(':');
      if (colon >= 0) prefix = prefix.slice(colon + 1);
      return { prefix, target: r.slice(eq + 1) };
    })
    .filter((r) => r && r.prefix)
    .sort((a, b) => b.prefix.length - a.prefix.length);

  function candidates(name) {
    const names = [name];
    for (const { prefix, target } of remaps) {
      if (name.startsWith(prefix)) {
        names.push(target + name.slice(prefix.length));
        break;
      }
    }
    const out = [];
    for (const n of names) {
      if (path.isAbsolute(n)) out.push(n);
      else for (const root of roots) out.push(path.join(root, n));
    }
    return out;
  }

  return function importCallback(name) {
    for (const p of candidates(name)) {
      try {
        if (fs.statSync(p).isFile()) return { contents: fs.readFileSync(p, 'utf8') };
      } catch (e) { /* try next */ }
    }
    return {
      error: `File not found. Searched the following locations: ${roots.map((r) => `"${r}"`).join(', ')}.`,
    };
  };
}

// --- I/O ----------------------------------------------------------------------------------------

function readStdin() {
  // Synchronous read of all of stdin (works for pipes and files).
  const chunks = [];
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      if (e.code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function writeOut(text) {
  // One write; Node flushes stdout before exiting naturally.
  process.stdout.write(text);
}

// --- modes --------------------------------------------------------------------------------------

function standardJson(opts) {
  const inputText = opts.files.length && opts.files[0] !== '-'
    ? fs.readFileSync(opts.files[0], 'utf8')
    : readStdin();
  let input;
  try {
    input = JSON.parse(inputText);
  } catch (e) {
    writeOut(JSON.stringify({
      errors: [{
        component: 'general', formattedMessage: `Error: Invalid JSON supplied: ${e.message}`,
        message: `Invalid JSON supplied: ${e.message}`, severity: 'error', type: 'JSONError',
      }],
    }));
    return;
  }
  if (process.env.SOLC_WRAPPER_LOG) {
    // Debugging aid: which settings/flags did the caller (brownie, forge, py-solc-x) send?
    const { sources, ...rest } = input;
    fs.appendFileSync(process.env.SOLC_WRAPPER_LOG, JSON.stringify({
      argv: process.argv.slice(2), cwd: process.cwd(), sources: Object.keys(sources || {}), ...rest,
    }) + '\n');
  }
  const remappings = (input.settings && input.settings.remappings) || [];
  const cb = makeImportCallback(opts, remappings);
  const output = loadSolc().compile(JSON.stringify(input), { import: cb });
  writeOut(output);
}

const COMBINED_MAP = {
  abi: ['abi'],
  bin: ['evm.bytecode.object'],
  'bin-runtime': ['evm.deployedBytecode.object'],
  srcmap: ['evm.bytecode.sourceMap'],
  'srcmap-runtime': ['evm.deployedBytecode.sourceMap'],
  hashes: ['evm.methodIdentifiers'],
  userdoc: ['userdoc'],
  devdoc: ['devdoc'],
  metadata: ['metadata'],
  'storage-layout': ['storageLayout'],
  opcodes: ['evm.bytecode.opcodes'],
  asm: ['evm.legacyAssembly'],
  'function-debug': ['evm.bytecode.functionDebugData'],
  'function-debug-runtime': ['evm.deployedBytecode.functionDebugData'],
  'generated-sources': ['evm.bytecode.generatedSources'],
  'generated-sources-runtime': ['evm.deployedBytecode.generatedSources'],
};
const COMBINED_KEYS = Object.keys(COMBINED_MAP).concat(['ast']);

function get(obj, dotted) {
  return dotted.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function combinedJson(opts) {
  const wanted = opts.combinedJson;
  const bad = wanted.filter((w) => !COMBINED_KEYS.includes(w) && w !== 'compact-format');
  if (bad.length) {
    fail(`Invalid option to --combined-json: ${bad[0]}`);
    return;
  }
  const sources = {};
  for (const f of opts.files) {
    if (f === '-') sources['<stdin>'] = { content: readStdin() };
    else sources[f] = { content: fs.readFileSync(f, 'utf8') };
  }
  if (!Object.keys(sources).length) {
    fail('No input files given. If you wish to use the standard input please specify "-" explicitly.');
    return;
  }
  const selection = [];
  for (const w of wanted) if (COMBINED_MAP[w]) selection.push(...COMBINED_MAP[w]);
  const settings = {
    remappings: opts.remappings,
    outputSelection: { '*': { '*': selection.length ? selection : ['abi'], '': ['ast'] } },
  };
  if (opts.flags.has('--optimize') || opts.optimizeRuns !== null) {
    settings.optimizer = { enabled: true, runs: opts.optimizeRuns === null ? 200 : opts.optimizeRuns };
  }
  if (opts.evmVersion) settings.evmVersion = opts.evmVersion;
  if (opts.flags.has('--via-ir') || opts.flags.has('--experimental-via-ir')) settings.viaIR = true;

  const input = { language: 'Solidity', sources, settings };
  const out = JSON.parse(loadSolc().compile(JSON.stringify(input), {
    import: makeImportCallback(opts, opts.remappings),
  }));

  const errors = out.errors || [];
  for (const e of errors) process.stderr.write(`${e.formattedMessage || e.message}\n`);
  if (errors.some((e) => e.severity === 'error')) {
    process.exitCode = 1;
    return;
  }

  const result = { contracts: {}, sourceList: [], sources: {}, version: longVersion() };
  const srcEntries = Object.entries(out.sources || {}).sort((a, b) => a[1].id - b[1].id);
  for (const [name, s] of srcEntries) {
    result.sourceList.push(name);
    result.sources[name] = wanted.includes('ast') ? { AST: s.ast, id: s.id } : { id: s.id };
  }
  for (const [file, contracts] of Object.entries(out.contracts || {})) {
    for (const [cname, c] of Object.entries(contracts)) {
      const entry = {};
      for (const w of wanted) {
        if (!COMBINED_MAP[w]) continue;
        const v = get(c, COMBINED_MAP[w][0]);
        if (v !== undefined) entry[w] = v;
      }
      result.contracts[`${file}:${cname}`] = entry;
    }
  }
  const text = JSON.stringify(result);
  if (opts.outputDir) {
    const target = path.join(opts.outputDir, 'combined.json');
    if (fs.existsSync(target) && !opts.flags.has('--overwrite')) {
      fail(`Refusing to overwrite existing file "${target}" (use --overwrite to force).`);
      return;
    }
    fs.mkdirSync(opts.outputDir, { recursive: true });
    fs.writeFileSync(target, text);
  } else {
    writeOut(text);
  }
}

const HELP = `solc, the Solidity commandline compiler (solcjs stand-in: tools/solc.js).

Usage: solc [options] [input_file...]
  --version            Print version and exit.
  --standard-json      Standard JSON input on stdin, output on stdout.
  --base-path path     Root of the virtual filesystem for imports.
  --include-path path  Extra import root (may be repeated).
  --allow-paths p,q    Accepted; also used as import roots.
  --combined-json ${COMBINED_KEYS.join(',')}
  --optimize           Enable the optimizer (combined-json mode).
  --optimize-runs n    Optimizer runs.
  --evm-version v      Target EVM version.
  --output-dir path    Write combined.json there.
`;

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    fail(e.message);
    return;
  }
  if (opts.flags.has('--version')) {
    writeOut(`solc, the solidity compiler commandline interface\nVersion: ${longVersion()}\n`);
    return;
  }
  if (opts.flags.has('--help')) {
    writeOut(HELP);
    return;
  }
  if (opts.flags.has('--standard-json')) {
    standardJson(opts);
    return;
  }
  if (opts.combinedJson) {
    combinedJson(opts);
    return;
  }
  fail('tools/solc.js supports only --version, --help, --standard-json and --combined-json.');
}

main();
