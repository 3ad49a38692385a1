#!/usr/bin/env node
import {enableLinearRegex} from '../dist/lib/regex-engine.js'

enableLinearRegex()
const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})
