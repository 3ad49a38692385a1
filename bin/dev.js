#!/usr/bin/env -S node --import tsx
import {enableLinearRegex} from '../src/lib/regex-engine.ts'

enableLinearRegex()
const {execute} = await import('@oclif/core')
await execute({development: true, dir: import.meta.url})
