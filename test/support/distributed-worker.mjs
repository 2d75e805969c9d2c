// A rank of the distributed tests: every collective across ranks on uneven and edge-case shapes, checked in
// closed form. Prints one JSON line `{rank, checks, failures}`; exits 1 when anything is wrong.
import {
  allGatherRanks,
  allReduceRanks,
  allToAllRanks,
  broadcastRanks,
  initProcessGroup,
  recvFrom,
  reduceRanks,
  reduceScatterRanks,
  sendTo,
} from '../../dist/src/distributed/index.js';

const pg = await initProcessGroup();
const { rank: r, size: n } = pg;
const failures = [];
let checks = 0;
const expectArray = (name, got, want) => {
  checks++;
  if (got.length !== want.length) return failures.push(`${name}: length ${got.length}, want ${want.length}`);
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) return failures.push(`${name}: [${i}] = ${got[i]}, want ${want[i]}`);
  }
};
const range = (len, f) => Float32Array.from({ length: len }, (_, i) => f(i));
const tri = (n * (n + 1)) / 2;

for (const len of [1, 7, 100_003]) {
  const data = range(len, (i) => (r + 1) * ((i % 5) + 1));
  await allReduceRanks(pg, data);
  expectArray(
    `allReduce ${len}`,
    data,
    range(len, (i) => tri * ((i % 5) + 1)),
  );
}

const sizes = Array.from({ length: n }, (_, k) => (k === 1 ? 0 : 3 * k + 40_001));
const gathered = await allGatherRanks(
  pg,
  range(sizes[r], (i) => r * 1000 + (i % 97)),
  sizes,
);
const wantGather = [];
sizes.forEach((s, k) => {
  for (let i = 0; i < s; i++) wantGather.push(k * 1000 + (i % 97));
});
expectArray('allGather uneven', gathered, wantGather);

const total = 10 * n + 3;
const scattered = await reduceScatterRanks(
  pg,
  range(total, (i) => (r + 1) * i),
);
const base = Math.floor(total / n);
const off = r * base + Math.min(r, total % n);
expectArray(
  'reduceScatter remainder',
  scattered,
  range(base + (r < total % n ? 1 : 0), (i) => tri * (off + i)),
);

const root = n - 1;
const b = await broadcastRanks(
  pg,
  r === root ? range(50_001, (i) => i % 11) : new Float32Array(50_001),
  root,
);
expectArray(
  `broadcast from ${root}`,
  b,
  range(50_001, (i) => i % 11),
);

const red = range(30_001, (i) => (r + 1) * (i % 3));
await reduceRanks(pg, red, 1 % n);
expectArray(
  'reduce to 1',
  red,
  range(30_001, (i) => (r === 1 % n ? tri : r + 1) * (i % 3)),
);

// Send/recv around the ring with a length per pair, zero included.
const right = (r + 1) % n;
const left = (r + n - 1) % n;
const lenFor = (src) => (src === 0 ? 0 : 20_000 * src + 1);
const sent = sendTo(
  pg,
  right,
  range(lenFor(r), (i) => r + i),
);
expectArray(
  'send/recv',
  await recvFrom(pg, left),
  range(lenFor(left), (i) => left + i),
);
await sent;

const parts = Array.from({ length: n }, (_, j) =>
  range((r + j) % 3 === 0 ? 0 : 5000 * (r + 1) + j, (i) => r * 100 + j + (i % 7)),
);
const received = await allToAllRanks(pg, parts);
for (const [s, got] of received.entries()) {
  const want = range((s + r) % 3 === 0 ? 0 : 5000 * (s + 1) + r, (k) => s * 100 + r + (k % 7));
  expectArray(`allToAll from ${s}`, got, want);
}

checks++;
if (pg.pending.frames !== 0 || pg.pending.waiters !== 0)
  failures.push(`left over: ${JSON.stringify(pg.pending)}`);
await pg.close();
process.stdout.write(`${JSON.stringify({ rank: r, checks, failures })}\n`);
process.exitCode = failures.length > 0 ? 1 : 0;
