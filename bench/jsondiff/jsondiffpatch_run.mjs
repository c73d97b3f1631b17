// Competitor run: jsondiffpatch on two JSON files. Usage: node jsondiffpatch_run.mjs A B ordered|key|set
import { readFileSync } from "node:fs";
import * as jdp from "jsondiffpatch";

const [aPath, bPath, mode] = process.argv.slice(2);
const a = JSON.parse(readFileSync(aPath, "utf8"));
const b = JSON.parse(readFileSync(bPath, "utf8"));
// jsondiffpatch has no float tolerance; arrays are matched by LCS, by objectHash for "key".
const opts = mode === "key" ? { objectHash: (o) => o.id } : {};
const delta = jdp.create(opts).diff(a, b);
process.exit(delta === undefined ? 0 : 1);
