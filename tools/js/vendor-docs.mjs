// vendor-docs copies the Swagger UI and Redoc files that the server embeds (server/docsassets) from
// node_modules, byte for byte. It refuses to run against versions other than the pinned ones, so the
// committed copies always match package.json. Run it as `npm run vendor:docs` from tools/js.
import { copyFileSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "server", "docsassets");

// package -> [pinned version, [[file in the package, name in server/docsassets], ...]]
const assets = {
  "swagger-ui-dist": ["5.35.0", [
    ["swagger-ui-bundle.js", "swagger-ui-bundle.js"],
    ["swagger-ui.css", "swagger-ui.css"],
    ["favicon-32x32.png", "favicon-32x32.png"],
  ]],
  redoc: ["2.5.4", [["bundles/redoc.standalone.js", "redoc.standalone.js"]]],
};

for (const [pkg, [want, files]] of Object.entries(assets)) {
  const root = join(here, "node_modules", pkg);
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  if (version !== want) {
    console.error(`vendor-docs: ${pkg} is ${version} in node_modules, want ${want}; run npm ci`);
    process.exit(1);
  }
  for (const [from, to] of files) {
    copyFileSync(join(root, from), join(out, to));
    console.log(`${pkg}@${version}/${from} -> server/docsassets/${to}`);
  }
}
