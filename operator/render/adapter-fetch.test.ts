import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClusterPki } from "../../sim/cluster/pki.js";
import { ADAPTER_FETCH_SCRIPT } from "./lora.js";

// The URL adapters' downloader (the init container's script) run by a real Python 3 against an https server
// on loopback whose certificate a test CA signed (SSL_CERT_FILE points Python's default trust store at it).

const weights = Buffer.alloc(4096, 7);
const config = JSON.stringify({ r: 16, peft_type: "LORA" });
let server: https.Server;
let port = 0;
let dir = "";
let caFile = "";

beforeAll(async () => {
  const pki = createClusterPki();
  dir = mkdtempSync(join(tmpdir(), "adapter-fetch-"));
  caFile = join(dir, "ca.pem");
  writeFileSync(caFile, pki.caCertificatePem);
  server = https.createServer({ cert: pki.apiServerCertificatePem, key: pki.apiServerPrivateKeyPem }, (req, res) => {
    const [, scenario = "", file = ""] = (req.url ?? "").split("/");
    const redirect = (to: string) => {
      res.writeHead(302, { location: to });
      res.end();
    };
    if (scenario === "moved") return redirect(`/ok/${file}`);
    if (scenario === "away") return redirect(`https://localhost:${port}/ok/${file}`);
    if (scenario === "plain") return redirect(`http://127.0.0.1:${port}/ok/${file}`);
    if (file === "adapter_config.json") return res.end(config);
    if (scenario === "ok") return res.end(weights);
    if (scenario === "big") {
      res.writeHead(200, { "content-length": String(10_000) });
      return res.end(Buffer.alloc(10_000));
    }
    if (scenario === "stream") {
      // No Content-Length: the size is only known by counting.
      res.writeHead(200, { "transfer-encoding": "chunked" });
      for (let i = 0; i < 10; i++) res.write(Buffer.alloc(1000));
      return res.end();
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function run(adapters: object[]): Promise<{ code: number; stdout: string; stderr: string; out: string }> {
  const out = mkdtempSync(join(dir, "out-"));
  return new Promise((resolve) => {
    execFile(
      "python3",
      ["-c", ADAPTER_FETCH_SCRIPT, JSON.stringify(adapters), out],
      { env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", SSL_CERT_FILE: caFile }, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr, out }),
    );
  });
}

const adapter = (name: string, scenario: string, extra: object = {}) => ({ name, baseUrl: `https://127.0.0.1:${port}/${scenario}`, maxBytes: 4096, ...extra });

describe("the URL adapter downloader", () => {
  it("downloads adapter_config.json and the weights into /<dir>/<name>, checking the sha256", async () => {
    const sha256 = createHash("sha256").update(weights).digest("hex");
    const result = await run([adapter("sql", "ok", { sha256 }), adapter("chat", "moved")]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(readFileSync(join(result.out, "sql", "adapter_model.safetensors"))).toEqual(weights);
    expect(readFileSync(join(result.out, "sql", "adapter_config.json"), "utf8")).toBe(config);
    // A redirect on the same host (https, same port) is followed.
    expect(readFileSync(join(result.out, "chat", "adapter_model.safetensors"))).toEqual(weights);
    expect(result.stdout).toContain("adapter chat: downloaded");
  }, 40_000);

  // Specs are built inside each case: the server's port is known only once it listens.
  it.each([
    ["a weights file whose sha256 differs", () => adapter("sql", "ok", { sha256: "0".repeat(64) }), "sha256 mismatch"],
    ["a Content-Length above maxBytes", () => adapter("sql", "big"), "larger than 4096 bytes"],
    ["a body without Content-Length that grows past maxBytes", () => adapter("sql", "stream"), "larger than 4096 bytes"],
    ["a redirect to another host", () => adapter("sql", "away"), "redirect to another host refused"],
    ["a redirect to plain http", () => adapter("sql", "plain"), "redirect to another host refused"],
    ["an http URL", () => ({ ...adapter("sql", "ok"), baseUrl: `http://127.0.0.1:${port}/ok` }), "not https"],
    ["a missing file", () => adapter("sql", "absent"), "404"],
  ])("fails on %s, with a one-line reason and no file left", async (_what, spec, reason) => {
    const result = await run([spec()]);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim()).toBe(`adapter sql: download failed: ${reason}`);
    expect(existsSync(join(result.out, "sql", "adapter_model.safetensors"))).toBe(false);
  }, 40_000);

  it("refuses a server whose certificate no trusted CA signed", async () => {
    const out = mkdtempSync(join(dir, "out-"));
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        "python3",
        ["-c", ADAPTER_FETCH_SCRIPT, JSON.stringify([adapter("sql", "ok")]), out],
        // The system store only: the test CA is unknown there.
        { env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", SSL_CERT_FILE: join(dir, "absent.pem") }, timeout: 30_000 },
        (error, _stdout, stderr) => resolve({ code: error ? 1 : 0, stderr }),
      );
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^adapter sql: download failed: .*(certificate|URLError)/);
  }, 40_000);
});
