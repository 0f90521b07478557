// The jobcast web UI: submit jobs, list mine (kept live by the jobs feed) and
// watch one job stream — tokens, stage progress, log lines, state.
//
// Plain ES module, no framework. All server traffic goes through the public
// client library (/client/jobcast.js), exactly as an embedding application's
// would. `?token=<JWT>` in the page URL authenticates; `#job=<id>` opens a job.

import { JobcastClient, TERMINAL_STATES } from '/client/jobcast.js';
import { cancelJob } from '/client/cancel.js';
import { emptyJobFold, foldJobEvent, retryLabel } from '/client/job_fold.js';

// ---- parameters the forms start with ------------------------------------------

const DEFAULT_PARAMS = {
  'llm.generate': { prompt: 'Write about tides', max_tokens: 200, tokens_per_second: 20 },
  research: { topic: 'Tidal energy', stages: ['plan', 'gather', 'read', 'write'], stage_ms: 1500 },
  exec: { command: 'ls', args: ['-l', '/'] },
};
// The research worker's stages when a job names none (workers/jobs/research.cpp).
const DEFAULT_RESEARCH_STAGES = ['plan', 'gather', 'read', 'write'];
const PAGE_SIZE = 50;
const MAX_LOG_LINES = 5000; // the log panel keeps the newest lines

const $ = (id) => document.getElementById(id);

// ---- the client ---------------------------------------------------------------------

const TOKEN_KEY = 'jobcast.token';

/**
 * The bearer token from `?token=`. It is moved into sessionStorage and taken
 * out of the address bar, so the link can be copied or bookmarked without it
 * while a reload in this tab stays signed in.
 */
function pageToken() {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get('token');
  if (fromUrl) {
    try {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
      params.delete('token');
      const query = params.toString();
      history.replaceState(null, '', `${location.pathname}${query ? `?${query}` : ''}${location.hash}`);
    } catch {
      // No storage (privacy mode): keep it in the URL so a reload still works.
    }
    return fromUrl;
  }
  try {
    return sessionStorage.getItem(TOKEN_KEY) || undefined;
  } catch {
    return undefined;
  }
}

const client = new JobcastClient({ url: location.origin, token: pageToken() });
// Exposed for debugging from the console and for browser tests.
window.jobcast = client;

// ---- connection indicator -------------------------------------------------------------

function showConnection(state, info = {}) {
  $('conn').dataset.state = state;
  $('conn-state').textContent = state;
  $('conn').title =
    state === 'reconnecting' && info.delayMs !== undefined
      ? `Connection lost${info.code ? ` (code ${info.code})` : ''}; retrying`
      : `WebSocket ${state}`;
}
showConnection(client.state);

let wasDisconnected = false;
client.onStateChange((state, info) => {
  showConnection(state, info);
  if (state === 'reconnecting') wasDisconnected = true;
  // The jobs feed is live only: whatever changed while we were away comes from
  // a fresh list. The job view's subscription resumes by itself.
  if (state === 'open' && wasDisconnected) {
    wasDisconnected = false;
    loadJobs();
  }
});
client.onError((err) => notify(err.message));

// ---- notices ----------------------------------------------------------------------------------

let noticeTimer = null;
function notify(message) {
  $('notice-text').textContent = message;
  $('notice').hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => ($('notice').hidden = true), 8000);
}
$('notice-close').addEventListener('click', () => ($('notice').hidden = true));

// ---- submit form ------------------------------------------------------------------------------

const typeSelect = $('submit-type');
const paramsInput = $('submit-params');

/** type -> the JSON Schema of its params, as its workers announced it (GET /v1/types). */
const schemas = new Map();

/** A value of the schema's type to start a required field with. */
function placeholder(prop) {
  if (Array.isArray(prop?.enum) && prop.enum.length > 0) return prop.enum[0];
  const type = Array.isArray(prop?.type) ? prop.type.find((t) => t !== 'null') : prop?.type;
  switch (type) {
    case 'integer':
    case 'number':
      return prop.minimum ?? 0;
    case 'boolean':
      return false;
    case 'array':
      return [];
    case 'object':
      return {};
    default:
      return '';
  }
}

/** The params a schema suggests: its defaults, and a placeholder for each required field. */
function schemaTemplate(schema) {
  const props = (schema && typeof schema === 'object' && schema.properties) || {};
  const out = {};
  for (const [name, prop] of Object.entries(props)) {
    if (prop && typeof prop === 'object' && 'default' in prop) out[name] = prop.default;
  }
  for (const name of Array.isArray(schema?.required) ? schema.required : []) {
    if (!(name in out)) out[name] = placeholder(props[name]);
  }
  return out;
}

function defaultParamsText(type) {
  const params = DEFAULT_PARAMS[type] ?? (schemas.get(type) ? schemaTemplate(schemas.get(type)) : {});
  return JSON.stringify(params, null, 2);
}

/** True while the parameters are some type's template (nothing the user typed). */
function paramsUntouched() {
  const text = paramsInput.value.trim();
  if (text === '') return true;
  return [...typeSelect.options].some((o) => text === defaultParamsText(o.value));
}

/** What a field of the schema takes, in a few words. */
function describeField(prop) {
  if (!prop || typeof prop !== 'object') return '';
  const notes = [];
  if (prop.description) notes.push(prop.description);
  if (Array.isArray(prop.enum)) notes.push(`one of ${prop.enum.map((v) => JSON.stringify(v)).join(', ')}`);
  if (prop.minimum !== undefined && prop.maximum !== undefined) notes.push(`${prop.minimum}…${prop.maximum}`);
  else if (prop.minimum !== undefined) notes.push(`≥ ${prop.minimum}`);
  else if (prop.maximum !== undefined) notes.push(`≤ ${prop.maximum}`);
  if (prop.minLength) notes.push(`at least ${prop.minLength} character${prop.minLength > 1 ? 's' : ''}`);
  if ('default' in prop) notes.push(`default ${JSON.stringify(prop.default)}`);
  return notes.join('; ');
}

/** Lists the selected type's fields under the parameters (hidden without a schema). */
function showSchema(type) {
  const schema = schemas.get(type);
  const list = $('schema-fields');
  list.replaceChildren();
  const props = (schema && typeof schema === 'object' && schema.properties) || {};
  const required = new Set(Array.isArray(schema?.required) ? schema.required : []);
  for (const [name, prop] of Object.entries(props)) {
    const item = document.createElement('li');
    item.dataset.field = name;
    const key = document.createElement('code');
    key.textContent = name;
    const kind = document.createElement('span');
    kind.className = 'schema-type';
    const types = Array.isArray(prop?.type) ? prop.type : prop?.type ? [prop.type] : [];
    kind.textContent = types.filter((t) => t !== 'null').join(' | ') || (Array.isArray(prop?.enum) ? 'enum' : 'any');
    item.append(key, ' ', kind);
    if (required.has(name)) {
      const mark = document.createElement('span');
      mark.className = 'schema-required';
      mark.textContent = 'required';
      item.append(' ', mark);
    }
    const note = describeField(prop);
    if (note) {
      const text = document.createElement('span');
      text.className = 'schema-note';
      text.textContent = note;
      item.append(' ', text);
    }
    list.append(item);
  }
  $('submit-schema').hidden = list.children.length === 0;
}

// Switching the type resets the parameters to its template, unless the user
// typed something of their own: that is never thrown away.
function onTypeChange() {
  if (paramsUntouched()) paramsInput.value = defaultParamsText(typeSelect.value);
  showSchema(typeSelect.value);
  clearSubmitError();
}
typeSelect.addEventListener('change', onTypeChange);
paramsInput.value = defaultParamsText(typeSelect.value);
paramsInput.addEventListener('input', clearSubmitError);

/** Adds the connected workers' types to the form, with their schemas. */
async function loadTypes() {
  let types;
  try {
    ({ types } = await client.types());
  } catch {
    return; // a broker without GET /v1/types: the built-in list stays
  }
  const untouched = paramsUntouched();
  for (const { type, schema } of types) {
    if (schema) schemas.set(type, schema);
    if (![...typeSelect.options].some((o) => o.value === type)) typeSelect.append(new Option(type, type));
  }
  if (untouched) paramsInput.value = defaultParamsText(typeSelect.value);
  showSchema(typeSelect.value);
}
loadTypes();

function showSubmitError(message) {
  $('submit-error').textContent = message;
  $('submit-error').hidden = false;
  paramsInput.setAttribute('aria-invalid', 'true');
}
function clearSubmitError() {
  $('submit-error').hidden = true;
  paramsInput.removeAttribute('aria-invalid');
}

$('submit-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  let params;
  try {
    params = paramsInput.value.trim() === '' ? {} : JSON.parse(paramsInput.value);
  } catch (err) {
    showSubmitError(`Parameters are not valid JSON: ${err.message}`);
    return;
  }
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    showSubmitError('Parameters must be a JSON object.');
    return;
  }
  const button = $('submit-btn');
  button.disabled = true;
  button.textContent = 'Submitting…';
  try {
    // One key per click: a retried request (flaky network) cannot create a second job.
    const job = await client.submit(typeSelect.value, params, { idempotencyKey: newKey() });
    upsertJob(job, { prepend: true });
    openJob(job.id, job);
  } catch (err) {
    showSubmitError(err.message);
  } finally {
    button.disabled = false;
    button.textContent = 'Submit';
  }
});

function newKey() {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

// ---- jobs list -----------------------------------------------------------------------------------

/** job id → job JSON, as last known (REST, then patched by feed events). */
const jobs = new Map();
let nextCursor = null;
let listGeneration = 0;

async function loadJobs({ more = false } = {}) {
  const generation = ++listGeneration;
  const message = $('jobs-message');
  try {
    const page = await client.listJobs({ limit: PAGE_SIZE, cursor: more ? nextCursor : undefined });
    if (generation !== listGeneration) return; // a newer load won
    if (!more) {
      jobs.clear();
      $('jobs-list').replaceChildren();
    }
    for (const job of page.jobs) upsertJob(job);
    nextCursor = page.next;
    $('more-btn').hidden = !nextCursor;
    message.hidden = jobs.size > 0;
    message.textContent = 'No jobs yet. Submit one to see it stream.';
    message.classList.remove('error');
  } catch (err) {
    if (generation !== listGeneration) return;
    message.hidden = false;
    message.textContent = `Could not load jobs: ${err.message}`;
    message.classList.add('error');
  }
}

$('refresh-btn').addEventListener('click', () => loadJobs());
$('more-btn').addEventListener('click', () => loadJobs({ more: true }));

/** Adds or refreshes a job's row. New rows go first (newest) or last (paging). */
function upsertJob(job, { prepend = false } = {}) {
  const known = jobs.get(job.id);
  // Never let an older snapshot overwrite a newer one.
  if (known && (known.last_seq ?? 0) > (job.last_seq ?? 0)) return;
  jobs.set(job.id, job);
  let row = $('jobs-list').querySelector(`[data-job-id="${CSS.escape(job.id)}"]`);
  if (!row) {
    row = createRow(job.id);
    if (prepend) $('jobs-list').prepend(row);
    else $('jobs-list').append(row);
    $('jobs-message').hidden = true;
  }
  renderRow(row, job);
}

function createRow(id) {
  const row = document.createElement('li');
  row.className = 'job-row';
  row.dataset.jobId = id;
  row.tabIndex = 0;
  row.setAttribute('role', 'button');
  row.innerHTML =
    '<div class="row-main"><span class="row-type"></span><code class="row-id"></code></div>' +
    '<div class="row-side"><span class="badge"></span><time class="row-time"></time></div>' +
    '<div class="row-progress"><div class="fill"></div></div>';
  row.addEventListener('click', () => openJob(id));
  row.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      openJob(id);
    }
  });
  return row;
}

function renderRow(row, job) {
  row.querySelector('.row-type').textContent = job.type;
  row.querySelector('.row-id').textContent = shortId(job.id);
  row.querySelector('.row-id').title = job.id;
  const badge = row.querySelector('.badge');
  badge.textContent = job.state;
  badge.dataset.state = job.state;
  row.dataset.state = job.state;
  const time = row.querySelector('.row-time');
  if (job.created_at) {
    time.dateTime = new Date(job.created_at).toISOString();
    time.textContent = formatTime(job.created_at);
  }
  const progress = typeof job.progress === 'number' ? job.progress : 0;
  row.querySelector('.row-progress .fill').style.width = `${Math.round(clamp01(progress) * 100)}%`;
  row.querySelector('.row-progress').hidden = job.state !== 'running' || !(progress > 0);
  row.classList.toggle('selected', view?.jobId === job.id);
  row.setAttribute('aria-current', view?.jobId === job.id ? 'true' : 'false');
}

// The jobs feed: state changes of all my jobs, live.
client.subscribeJobs((event) => {
  const job = jobs.get(event.job);
  if (!job) {
    // Submitted elsewhere (another tab, the CLI): fetch it and show it first.
    client.getJob(event.job).then((fresh) => upsertJob(fresh, { prepend: true }), () => {});
    return;
  }
  if (event.seq <= (job.last_seq ?? 0)) return; // history the list already reflects
  applyStateEvent(job, event);
  const row = $('jobs-list').querySelector(`[data-job-id="${CSS.escape(job.id)}"]`);
  if (row) renderRow(row, job);
});

function applyStateEvent(job, event) {
  job.last_seq = Math.max(job.last_seq ?? 0, event.seq);
  job.state = event.data.state ?? job.state;
  if (typeof event.data.attempt === 'number') job.attempt = event.data.attempt;
  if (event.data.worker) job.worker = event.data.worker;
  if (job.state === 'succeeded') job.progress = 1;
}

// ---- job view ---------------------------------------------------------------------------------------

/**
 * The job on screen. Everything streamed into the view goes through `view`;
 * opening another job replaces it, and callbacks of the old one check
 * `view === self` so that nothing late leaks into the new job's panels.
 */
let view = null;

function openJob(jobId, snapshot) {
  if (view?.jobId === jobId) return;
  view?.subscription?.unsubscribe();
  const self = {
    jobId,
    job: copyOrNull(snapshot ?? jobs.get(jobId)), // the view's own copy; the list keeps its own
    subscription: null,
    // The job's text is the shared fold's (job_fold.js, as in snapshots and
    // useJob); the text node shows it, brought up to date once per frame.
    fold: emptyJobFold(),
    textNode: document.createTextNode(''),
    flushScheduled: false,
    tokens: 0,
    stages: new Map(),
  };
  view = self;
  if (location.hash !== `#job=${encodeURIComponent(jobId)}`) history.replaceState(null, '', `#job=${encodeURIComponent(jobId)}`);

  for (const row of $('jobs-list').children) {
    const selected = row.dataset.jobId === jobId;
    row.classList.toggle('selected', selected);
    row.setAttribute('aria-current', selected ? 'true' : 'false');
  }
  resetJobView(self);

  // Subscribe from seq 0: the broker replays the whole log, then streams live;
  // the client resumes by itself after any disconnect.
  try {
    self.subscription = client.subscribe(jobId, {
      after: 0,
      onEvent: (event) => view === self && onJobEvent(self, event),
      onDone: (event) => view === self && onJobDone(self, event),
      onError: (err) => view === self && onSubscriptionError(err),
    });
  } catch (err) {
    showJobError(err.message);
  }
  client.getJob(jobId).then(
    (job) => {
      if (view !== self) return;
      // The stream may already be ahead of this snapshot: keep its state.
      const streamed = self.job;
      self.job = { ...job, ...(streamed && streamed.last_seq > job.last_seq ? pickLive(streamed) : {}) };
      // The broker's job JSON names the worker only while the job runs (null
      // once it finished); the replayed `running` state event still knows it.
      if (!self.job.worker && streamed?.worker) self.job.worker = streamed.worker;
      renderJobHead(self);
      prepareStages(self);
    },
    (err) => view === self && !self.job && showJobError(`Could not load the job: ${err.message}`),
  );
}

function copyOrNull(job) {
  return job ? { ...job } : null;
}

function pickLive(job) {
  const { state, attempt, worker, last_seq, progress } = job;
  return { state, attempt, worker, last_seq, progress };
}

function resetJobView(self) {
  $('job-empty').hidden = true;
  $('job-detail').hidden = false;
  $('job-id').textContent = self.jobId;
  const text = $('job-text');
  text.replaceChildren(self.textNode);
  $('job-log').replaceChildren();
  $('job-stages').replaceChildren();
  $('job-result').textContent = '';
  $('result-panel').hidden = true;
  $('job-error').hidden = true;
  $('job-progress').hidden = true;
  $('output-panel').hidden = true;
  $('stages-panel').hidden = true;
  $('log-panel').hidden = true;
  $('job-seq').textContent = '0';
  renderJobHead(self);
  prepareStages(self);
}

function renderJobHead(self) {
  const job = self.job ?? {};
  const type = job.type ?? 'job';
  $('job-type').textContent = type;
  const state = job.state ?? 'queued';
  const badge = $('job-state');
  badge.textContent = state;
  badge.dataset.state = state;
  $('job-attempt').textContent =
    retryLabel(self.fold, job.max_attempts) ?? (job.max_attempts ? `${job.attempt ?? 0} of ${job.max_attempts}` : String(job.attempt ?? '–'));
  $('job-worker').textContent = job.worker || '–';
  $('job-created').textContent = job.created_at ? formatTime(job.created_at) : '–';
  const cancel = $('cancel-btn');
  const terminal = TERMINAL_STATES.includes(state);
  cancel.disabled = terminal || job.cancel_requested === true;
  cancel.textContent = job.cancel_requested && !terminal ? 'Cancelling…' : 'Cancel';
  cancel.hidden = terminal;

  // Panels by what the type produces; any event kind also reveals its panel.
  $('output-panel').hidden = !(type === 'llm.generate' || self.tokens > 0);
  const logsExpected = type === 'exec' || type === 'research';
  $('log-panel').hidden = !(logsExpected || $('job-log').childElementCount > 0);
  if (logsExpected && $('job-log').childElementCount === 0) showLogPlaceholder();
}

function showLogPlaceholder() {
  const line = document.createElement('div');
  line.className = 'log-line placeholder';
  line.textContent = 'No log lines yet.';
  $('job-log').replaceChildren(line);
}

function onJobEvent(self, event) {
  $('job-seq').textContent = String(event.seq);
  const job = (self.job ??= { id: self.jobId, last_seq: 0 });
  job.last_seq = Math.max(job.last_seq ?? 0, event.seq);
  self.fold = foldJobEvent(self.fold, event, 0); // the log panel keeps its own lines
  switch (event.kind) {
    case 'token':
      showText(self);
      break;
    case 'progress':
      onProgress(self, event.data);
      break;
    case 'log':
      appendLog(event);
      break;
    case 'state':
      applyStateEvent(job, event);
      // A new attempt may have cut the text back to its checkpoint.
      if (self.fold.text !== self.textNode.data) scheduleTextFlush(self);
      if (event.data.state === 'queued' && event.data.reason) appendLog({ ts: event.ts, data: { level: 'warn', message: `requeued: ${event.data.reason}` } });
      renderJobHead(self);
      if (jobs.has(self.jobId)) upsertJob({ ...jobs.get(self.jobId), ...pickLive(job) });
      break;
    case 'error':
      showJobError(event.data.message ?? 'the job reported an error');
      break;
    case 'result':
      $('job-result').textContent = JSON.stringify(event.data, null, 2);
      $('result-panel').hidden = false;
      break;
    default:
      break; // kinds a newer broker may add
  }
}

function onJobDone(self, event) {
  flushTokens(self);
  const state = event.data.state;
  if (state === 'failed' && event.data.reason) showJobError(event.data.reason);
  if (state === 'succeeded' && !$('job-progress').hidden) setOverallProgress(1);
  if (state === 'succeeded') {
    for (const stage of self.stages.values()) if (stage.fraction < 1 && stage.seen) setStage(stage, 1);
  }
  renderJobHead(self);
}

function onSubscriptionError(err) {
  // A hole in the stream is repaired by the client (it resubscribes); not the reader's concern.
  if (err.code === 'gap') {
    console.warn('jobcast:', err.message);
    return;
  }
  showJobError(err.code === 'not_found' ? 'This job does not exist (or is not yours).' : err.message);
}

function showJobError(message) {
  $('job-error').textContent = message;
  $('job-error').hidden = false;
}

// Tokens can arrive hundreds per second: bring the text node up to the fold's
// text at most once per animation frame (appending what is new, or replacing
// it when the fold's text is not a continuation), and keep the view pinned to
// the bottom only if the reader has not scrolled up.
function showText(self) {
  self.tokens += 1;
  if ($('output-panel').hidden) $('output-panel').hidden = false;
  scheduleTextFlush(self);
}

function scheduleTextFlush(self) {
  if (self.flushScheduled) return;
  self.flushScheduled = true;
  requestAnimationFrame(() => flushTokens(self));
}

function flushTokens(self) {
  self.flushScheduled = false;
  const shown = self.textNode.data;
  const text = self.fold.text;
  if (shown === text || view !== self) return;
  const out = $('job-text');
  const pinned = out.scrollHeight - out.scrollTop - out.clientHeight < 24;
  if (text.startsWith(shown)) self.textNode.appendData(text.slice(shown.length));
  else self.textNode.data = text;
  if (pinned) out.scrollTop = out.scrollHeight;
}

function appendLog(event) {
  const log = $('job-log');
  log.querySelector('.placeholder')?.remove();
  const pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  const line = document.createElement('div');
  const level = String(event.data.level ?? 'info');
  line.className = `log-line level-${level.replace(/[^a-z]/gi, '')}`;
  if (event.data.stream === 'stderr') line.classList.add('stderr');
  const time = document.createElement('time');
  time.textContent = formatClock(tsToMs(event.ts));
  const message = document.createElement('span');
  message.className = 'log-message';
  message.textContent = String(event.data.message ?? '');
  line.append(time, message);
  log.append(line);
  while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
  $('log-panel').hidden = false;
  if (pinned) log.scrollTop = log.scrollHeight;
}

// ---- research stages ----------------------------------------------------------------------------

// The research worker reports progress with the job's overall fraction and the
// stage name, at each stage's start (i/n) and end ((i+1)/n). A stage's own
// progress is therefore fraction * n - i.
function prepareStages(self) {
  const job = self.job;
  if (job?.type !== 'research') return;
  const names = Array.isArray(job.params?.stages) && job.params.stages.length ? job.params.stages : DEFAULT_RESEARCH_STAGES;
  names.forEach((name) => stageFor(self, String(name)));
  $('stages-panel').hidden = false;
  $('job-progress').hidden = false;
}

function stageFor(self, name) {
  let stage = self.stages.get(name);
  if (stage) return stage;
  const item = document.createElement('li');
  item.className = 'stage';
  item.dataset.stage = name;
  item.dataset.status = 'pending';
  item.innerHTML =
    '<span class="stage-name"></span><div class="bar"><div class="fill"></div></div><span class="pct">0%</span>';
  item.querySelector('.stage-name').textContent = name;
  $('job-stages').append(item);
  stage = { name, index: self.stages.size, item, fraction: 0, seen: false };
  self.stages.set(name, stage);
  return stage;
}

function onProgress(self, data) {
  const fraction = clamp01(Number(data.fraction) || 0);
  setOverallProgress(self.fold.progress); // the fold's: never back, not even on a retry
  if (!data.stage) return;
  $('stages-panel').hidden = false;
  const stage = stageFor(self, String(data.stage));
  const n = self.stages.size;
  setStage(stage, clamp01(fraction * n - stage.index), data.message);
  // Stages before this one are complete, even if their end was never seen
  // (e.g. a resumed attempt starting after its checkpoint).
  for (const other of self.stages.values()) if (other.index < stage.index && other.fraction < 1) setStage(other, 1);
}

function setStage(stage, fraction, message) {
  stage.seen = true;
  stage.fraction = Math.max(stage.fraction, fraction);
  const pct = Math.round(stage.fraction * 100);
  stage.item.querySelector('.fill').style.width = `${pct}%`;
  stage.item.querySelector('.pct').textContent = `${pct}%`;
  stage.item.dataset.status = stage.fraction >= 1 ? 'done' : 'running';
  if (message) stage.item.title = message;
}

function setOverallProgress(fraction) {
  $('job-progress').hidden = false;
  const pct = Math.round(clamp01(fraction) * 100);
  $('job-progress-fill').style.width = `${pct}%`;
  $('job-progress-text').textContent = `${pct}%`;
}

// ---- cancel ----------------------------------------------------------------------------------------

$('cancel-btn').addEventListener('click', async () => {
  const self = view;
  if (!self) return;
  const button = $('cancel-btn');
  button.disabled = true;
  button.textContent = 'Cancelling…';
  try {
    // Tried again while the broker restarts (as useJob's and useChat's stop);
    // undefined: it finished meanwhile, and the stream brings the final state.
    const job = await cancelJob(client, self.jobId);
    if (job && view === self && self.job && !TERMINAL_STATES.includes(self.job.state)) {
      self.job.cancel_requested = job.cancel_requested ?? true;
    }
  } catch (err) {
    if (view === self) showJobError(`Cancel failed: ${err.message}`);
  }
  if (view === self) renderJobHead(self);
});

// ---- formatting ------------------------------------------------------------------------------------

function shortId(id) {
  return id.length > 12 ? `…${id.slice(-10)}` : id;
}

function clamp01(x) {
  return Math.min(1, Math.max(0, x));
}

/** Event timestamps are unix ms or µs (DESIGN); tell them apart by size. */
function tsToMs(ts) {
  return typeof ts === 'number' && ts > 1e14 ? Math.floor(ts / 1000) : ts;
}

/** HH:MM:SS in local time: compact and the same width in every locale. */
function formatClock(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

function formatTime(ms) {
  const date = new Date(ms);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? formatClock(ms)
    : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

// ---- start ---------------------------------------------------------------------------------------------

function jobFromHash() {
  const match = /^#job=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

window.addEventListener('hashchange', () => {
  const id = jobFromHash();
  if (id) openJob(id);
});

await loadJobs();
const initial = jobFromHash();
if (initial) openJob(initial);
