import { describe, expect, it } from "vitest";
import { UsageTap } from "./usage.js";

const event = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;

describe("token counts of an answer", () => {
  it("takes a stream's final usage chunk (stream_options.include_usage) over any estimate", () => {
    const tap = new UsageTap(400, true);
    tap.observe(Buffer.from(event({ choices: [{ delta: { content: "a" } }] }) + event({ choices: [{ delta: { content: "b" } }] })));
    tap.observe(Buffer.from(event({ choices: [], usage: { prompt_tokens: 97, completion_tokens: 2, total_tokens: 99 } })));
    tap.observe(Buffer.from("data: [DONE]\n\n"));
    expect(tap.result()).toEqual({ promptTokens: 97, completionTokens: 2, source: "engine" });
  });

  it("estimates a stream without usage: prompt characters / 4 and one token per content event", () => {
    const tap = new UsageTap(401, true);
    for (let i = 0; i < 5; i++) tap.observe(Buffer.from(event({ choices: [{ text: "x" }] })));
    tap.observe(Buffer.from("data: [DONE]\n\n"));
    expect(tap.result()).toEqual({ promptTokens: 101, completionTokens: 5, source: "estimate" });
  });

  it("reads a JSON answer's usage even when it arrives in pieces", () => {
    const tap = new UsageTap(10, false);
    const body = JSON.stringify({ choices: [{ text: "hello" }], usage: { prompt_tokens: 3, completion_tokens: 1 } });
    tap.observe(Buffer.from(body.slice(0, 20)));
    tap.observe(Buffer.from(body.slice(20)));
    expect(tap.result()).toEqual({ promptTokens: 3, completionTokens: 1, source: "engine" });
  });

  it("estimates a JSON answer without usage from its text, and refuses nonsense usage figures", () => {
    const tap = new UsageTap(8, false);
    tap.observe(Buffer.from(JSON.stringify({ choices: [{ message: { content: "12345678" } }], usage: { prompt_tokens: -1, completion_tokens: 2 } })));
    expect(tap.result()).toEqual({ promptTokens: 2, completionTokens: 2, source: "estimate" });
  });
});
