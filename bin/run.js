#!/usr/bin/env node
import {enableLinearRegex} from '../dist/lib/regex-engine.js'

enableLinearRegex()
// @oclif/core checks the Node version against its own engines range with semver on every start
// (~10 ms of a short command); package.json's engines (>= 20.17) is the stricter one anyway.
process.env.OCLIF_DISABLE_ENGINE_WARNING ??= '1'
const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})
