// Inlines the ABI's numbers into the compiled library (build/lib/src): each
// `import { A, B } from '.../build/abi.js'` of a module becomes
// `const A = 1, B = 2;` for the names that are numbers (the others, such as
// CODE, stay imported).
//
// Why: V8 folds a module's own literal constants into optimized code, but
// not bindings imported from another module, nor constants initialised from
// them; on the embedded hot path (decision bits, result and batch offsets)
// that cost 7% of limitSync's throughput. The values still come from the one
// definition (abi/abi.mjs, generated into build/abi.ts and compiled to
// build/lib/build/abi.js): this step copies them at build time, never by
// hand. Each statement stays on its line, so source maps hold.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const abi = await import(pathToFileURL('build/lib/build/abi.js').href);
const IMPORT = /^import \{([^}]*)\} from '((?:\.\.\/)+build\/abi\.js)';$/gm;

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (path.endsWith('.js')) yield path;
  }
}

let inlined = 0;
for (const file of files('build/lib/src')) {
  const text = readFileSync(file, 'utf8');
  const out = text.replace(IMPORT, (_, list, from) => {
    const numbers = [];
    const others = [];
    for (const part of list.split(',').map((s) => s.trim()).filter(Boolean)) {
      const [name, local = name] = part.split(/\s+as\s+/);
      if (!(name in abi)) throw new Error(`${file}: build/abi.js has no export ${name}`);
      if (typeof abi[name] === 'number') numbers.push(`${local} = ${abi[name]}`);
      else others.push(part);
    }
    inlined += numbers.length;
    const kept = others.length > 0 ? `import { ${others.join(', ')} } from '${from}'; ` : '';
    return numbers.length > 0 ? `${kept}const ${numbers.join(', ')};` : `${kept}`.trimEnd();
  });
  if (out !== text) writeFileSync(file, out);
}
console.log(`build/lib: ${inlined} ABI numbers inlined`);
