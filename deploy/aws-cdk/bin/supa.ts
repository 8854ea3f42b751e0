#!/usr/bin/env node
// The CDK app: one Supa platform per stack, its settings from the `supa`
// context (cdk.json, or `-c supa='{...}'`). No lookups: synth runs offline.
import { App } from "aws-cdk-lib";
import { SupaStack, settingsFrom } from "../lib/supa-stack";

const app = new App();
const settings = settingsFrom(app.node.tryGetContext("supa"));
new SupaStack(app, "Supa", {
  env: { account: settings.account, region: settings.region },
  settings,
});
