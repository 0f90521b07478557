// Holds --connections idle WebSockets (/v1/ws, each answering the broker's
// pings as browsers do) open to a running broker for --seconds, for
// measuring what idle connections cost it (bench/idle_cost.sh runs it against
// a broker under callgrind). Prints a line when all are open and one when it
// lets them go, and every second `pings N` (the broker's pings so far, all
// connections); exits non-zero if a connection fails or the broker closes one.
//
//   node bench/idle_ws.mjs --url ws://127.0.0.1:8080/v1/ws [--connections 200] [--seconds 120]

import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '120' },
  },
});
if (!values.url) throw new Error('--url is required');
const COUNT = Number(values.connections);
const SECONDS = Number(values.seconds);

let closedEarly = 0;
let pings = 0;
let holding = true;
const sockets = [];
for (let i = 0; i < COUNT; i++) {
  sockets.push(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(values.url);
      ws.on('open', () => resolve(ws));
      ws.on('ping', () => pings++);
      ws.on('error', reject);
      ws.on('close', () => {
        if (holding) closedEarly++;
      });
    }),
  );
}
const open = await Promise.all(sockets);
console.log(`open ${open.length} ${Date.now()}`);
const counting = setInterval(() => console.log(`pings ${pings}`), 1000);
await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
clearInterval(counting);
holding = false;
console.log(`done ${Date.now()} closed_by_broker=${closedEarly}`);
for (const ws of open) ws.terminate();
process.exit(closedEarly === 0 ? 0 : 1);
