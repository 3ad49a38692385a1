/** A dependency-free line chart (SVG) of distribution time against the number of peers. */

export interface ChartInput {
  title: string
  counts: number[]
  series: Array<{label: string; color: string; values: number[]}>
  /** Time of one transfer at the link rate, drawn as a dashed line. */
  ideal?: number
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function niceMax(value: number): number {
  const step = 10 ** Math.floor(Math.log10(value))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step
  return 10 * step
}

export function renderSvg(input: ChartInput): string {
  const W = 640
  const H = 400
  const m = {left: 60, right: 170, top: 40, bottom: 50}
  const pw = W - m.left - m.right
  const ph = H - m.top - m.bottom
  const max = niceMax(Math.max(...input.series.flatMap((s) => s.values), input.ideal ?? 0) * 1.05)
  const xs = input.counts
  const x = (i: number): number => m.left + (xs.length === 1 ? pw / 2 : (i / (xs.length - 1)) * pw)
  const y = (v: number): number => m.top + ph - (v / max) * ph
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(input.title)}</text>`)
  const ticks = 5
  for (let t = 0; t <= ticks; t++) {
    const v = (max / ticks) * t
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`)
    out.push(`<text x="${m.left - 8}" y="${y(v) + 4}" text-anchor="end">${Number(v.toFixed(1))}</text>`)
  }
  xs.forEach((n, i) => out.push(`<text x="${x(i)}" y="${m.top + ph + 18}" text-anchor="middle">${n}</text>`))
  out.push(`<text x="${m.left + pw / 2}" y="${H - 10}" text-anchor="middle">peers downloading</text>`)
  out.push(`<text x="16" y="${m.top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${m.top + ph / 2})">seconds until the last peer has it</text>`)
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}" stroke="black"/>`)
  out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}" stroke="black"/>`)
  const legend: Array<{label: string; color: string; dash?: boolean}> = []
  if (input.ideal !== undefined) {
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y(input.ideal)}" y2="${y(input.ideal)}" stroke="#555" stroke-dasharray="6 4"/>`)
    legend.push({label: 'one transfer at link rate', color: '#555', dash: true})
  }
  for (const s of input.series) {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
    out.push(`<polyline points="${points}" fill="none" stroke="${s.color}" stroke-width="2.5"/>`)
    s.values.forEach((v, i) => {
      out.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="4" fill="${s.color}"/>`)
      out.push(`<text x="${x(i).toFixed(1)}" y="${(y(v) - 8).toFixed(1)}" text-anchor="middle" fill="${s.color}">${v.toFixed(1)}</text>`)
    })
    legend.push({label: s.label, color: s.color})
  }
  legend.forEach((l, i) => {
    const ly = m.top + 10 + i * 20
    const lx = m.left + pw + 15
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${l.color}" stroke-width="2.5"${l.dash ? ' stroke-dasharray="6 4"' : ''}/>`)
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(l.label)}</text>`)
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
