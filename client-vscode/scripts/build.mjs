// Bundle the extension and vscode-languageclient into one file, so the .vsix needs no node_modules
// (`vsce package --no-dependencies`). `vscode` is provided by the editor at run time.
import * as esbuild from "esbuild";

await esbuild.build({
  entryPoints: ["src/extension.ts"],
  bundle: true,
  outfile: "dist/extension.js",
  platform: "node",
  format: "cjs",
  target: "node18",
  external: ["vscode"],
  minify: process.argv.includes("--minify"),
  sourcemap: false,
  logLevel: "info",
});
