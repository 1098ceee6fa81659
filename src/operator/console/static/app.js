// setls operator console: the pages (hash routes) over the operator's /v1 JSON API. Vanilla JS, no
// build step. Every value from the API reaches the page as text nodes (never parsed as markup), so
// registry data cannot inject elements or script. The session cookie is HttpOnly; this script holds the CSRF
// token in memory (asked again from GET /console/session after a reload) and sends it as
// X-CSRF-Token on every API call. Destructive actions open a confirmation dialog and send
// `confirm` (the typed UID, or true) which the server requires from console sessions.
'use strict';

const STATES = ['manifest', 'enrolled', 'active', 'locked', 'terminated'];
const CARD_ACTIONS = [
  { kind: 'lock', label: 'Lock', typed: true, body: { reason: 'locked from the console' } },
  { kind: 'unlock', label: 'Unlock', typed: false, body: {} },
  { kind: 'rekey', label: 'Re-key', typed: true, body: {} },
  { kind: 'read-audit', label: 'Read audit log', typed: false, body: {} },
  { kind: 'terminate', label: 'Terminate', typed: true, body: { reason: 'terminated from the console' } },
];
const FINDING_CHECKS = ['cert-expiring', 'revoked-cert-served', 'shared-key', 'factory-keys-unrotated', 'audit-log-gap', 'audit-log-bad-signature', 'lock-not-delivered', 'card-not-seen', 'ca-expiring'];
const FINAL_CAMPAIGN = ['canceled', 'aborted', 'completed'];

const session = { csrf: null, name: null, role: null };
let cleanup = []; // run when leaving a page (EventSource, timers)

// ------------------------------------------------------------------ DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const main = () => document.getElementById('main');
function page(name, ...children) {
  const m = main();
  m.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  m.dataset.page = name;
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', name.startsWith(a.dataset.nav.replace(/s$/, '')));
}
function flash(text, error) {
  const f = document.getElementById('flash');
  f.textContent = text || '';
  f.className = error ? 'error' : '';
}
const when = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');
const badge = (s) => h('span', { class: `state state-${s}` }, s);
const labelsText = (l) => Object.entries(l || {}).map(([k, v]) => `${k}=${v}`).join(', ');
function table(headers, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty || 'none');
  return h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), h('tbody', {}, rows));
}
function dl(pairs) {
  return h('dl', { class: 'grid' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (session.csrf) headers['x-csrf-token'] = session.csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = (json && json.error) || {};
    if (res.status === 401 && path.startsWith('/v1/')) {
      session.csrf = null;
      location.hash = '#/sign-in';
    }
    throw new ApiError(res.status, err.code || `HTTP_${res.status}`, err.message || res.statusText);
  }
  return json;
}
const nextOf = (p) => (p && (p.next !== undefined ? p.next : p.nextCursor)) || null;

// ------------------------------------------------------------------ confirmation dialog

/** Resolves true when confirmed. `typed`: the text the user must type (a card UID), else a plain confirm. */
function confirmAction(title, text, typed) {
  const d = document.getElementById('confirm-dialog');
  const input = document.getElementById('confirm-typed');
  const ok = document.getElementById('confirm-ok');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-typed-label').hidden = !typed;
  document.getElementById('confirm-expected').textContent = typed || '';
  input.value = '';
  const check = () => (ok.disabled = typed ? input.value.trim().toLowerCase() !== typed.toLowerCase() : false);
  input.oninput = check;
  check();
  return new Promise((resolve) => {
    const done = (v) => {
      d.onclose = null;
      if (d.open) d.close();
      resolve(v);
    };
    document.getElementById('confirm-cancel').onclick = () => done(false);
    document.getElementById('confirm-form').onsubmit = (e) => {
      e.preventDefault();
      if (!ok.disabled) done(true);
    };
    d.onclose = () => done(false);
    d.showModal();
    (typed ? input : ok).focus();
  });
}

// ------------------------------------------------------------------ pages

function signInPage() {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', placeholder: 'sop_…', required: true });
  const err = h('p', { id: 'signin-error', class: 'muted' });
  const form = h('form', {
    id: 'signin-form',
    onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = '';
      try {
        const s = await fetch('/console/session', {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ token: input.value.trim() }),
          credentials: 'same-origin',
        });
        const j = await s.json();
        input.value = '';
        if (!s.ok) {
          err.textContent = `Sign-in refused: ${(j.error && j.error.message) || s.status}`;
          return;
        }
        setSession(j);
        location.hash = '#/fleet';
      } catch (x) {
        err.textContent = `Sign-in failed: ${x.message}`;
      }
    },
  }, h('label', {}, 'API token', input), h('button', { class: 'primary', type: 'submit', id: 'signin' }, 'Sign in'), err);
  page('sign-in', h('div', { class: 'signin' }, h('h1', {}, 'Sign in'), h('p', { class: 'muted' }, 'Use an operator API token (setls operator token --role viewer|operator|admin). The token is exchanged for a session; it is not kept in the browser.'), form));
  input.focus();
}

function setSession(j) {
  session.csrf = j.csrf;
  session.name = j.name;
  session.role = j.role;
  document.getElementById('who').textContent = j ? `${j.name} (${j.role})` : '';
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
}

async function fleetPage(q) {
  const state = q.get('state') || '';
  const label = q.get('label') || '';
  const uid = q.get('uid') || '';
  const cursor = q.get('cursor') || '';
  const params = new URLSearchParams({ limit: q.get('limit') || '50' });
  if (state) params.set('state', state);
  if (label) params.set('label', label);
  if (uid) params.set('uid_prefix', uid);
  if (cursor) params.set('cursor', cursor);
  const res = await api('GET', `/v1/fleet?${params}`);
  const go = (changes) => {
    const n = new URLSearchParams({ state, label, uid, limit: q.get('limit') || '' });
    for (const [k, v] of Object.entries(changes)) n.set(k, v);
    for (const [k, v] of [...n]) if (!v) n.delete(k);
    location.hash = `#/fleet?${n}`;
  };
  const stateSel = h('select', { id: 'f-state', name: 'state' }, h('option', { value: '' }, 'any state'), STATES.map((s) => h('option', { value: s, selected: s === state }, s)));
  const labelIn = h('input', { id: 'f-label', name: 'label', value: label, placeholder: 'key or key=value' });
  const uidIn = h('input', { id: 'f-uid', name: 'uid', value: uid, placeholder: 'hex prefix', spellcheck: 'false' });
  const filters = h('form', {
    class: 'filters',
    id: 'fleet-filters',
    onsubmit: (e) => {
      e.preventDefault();
      go({ state: stateSel.value, label: labelIn.value.trim(), uid: uidIn.value.trim().toLowerCase() });
    },
  }, h('label', {}, 'State', stateSel), h('label', {}, 'Label', labelIn), h('label', {}, 'UID prefix', uidIn), h('button', { type: 'submit', class: 'primary', id: 'f-apply' }, 'Filter'), h('button', { type: 'button', onclick: () => go({ state: '', label: '', uid: '' }) }, 'Clear'));
  let counts = null;
  if (res.counts) {
    sessionStorage.setItem('fleetCounts', JSON.stringify({ counts: res.counts, total: res.total }));
    counts = res;
  } else {
    try {
      counts = JSON.parse(sessionStorage.getItem('fleetCounts') || 'null');
    } catch {
      counts = null;
    }
  }
  const countsEl = h('div', { class: 'counts', id: 'fleet-counts' }, counts
    ? [h('span', { class: `count${state ? '' : ' selected'}`, onclick: () => go({ state: '' }) }, 'all', h('b', {}, counts.total)), STATES.map((s) => h('span', { class: `count${state === s ? ' selected' : ''}`, dataset: { state: s }, onclick: () => go({ state: s }) }, s, h('b', {}, counts.counts[s] || 0)))]
    : []);
  const rows = res.items.map((c) =>
    h('tr', { dataset: { uid: c.uid } },
      h('td', { class: 'mono' }, h('a', { href: `#/card/${c.uid}` }, c.uid)),
      h('td', {}, badge(c.state)),
      h('td', {}, labelsText(c.labels)),
      h('td', {}, c.hostId || '—'),
      h('td', {}, when(c.lastSeenAt)),
      h('td', {}, when(c.updatedAt))));
  const next = nextOf(res);
  const pager = h('div', { class: 'pager' },
    h('button', { type: 'button', id: 'page-first', disabled: !cursor, onclick: () => go({}) }, 'First page'),
    h('button', { type: 'button', id: 'page-prev', disabled: !cursor, onclick: () => history.back() }, 'Previous'),
    h('button', { type: 'button', id: 'page-next', disabled: !next, onclick: () => go({ cursor: next }) }, 'Next page'),
    h('span', { id: 'fleet-shown' }, `${res.items.length} card(s) on this page`),
    h('span', { id: 'fleet-server-ms' }, typeof res.serverMs === 'number' ? `· server ${res.serverMs.toFixed(1)} ms` : ''));
  page('fleet', h('h1', {}, 'Fleet'), countsEl, filters, table(['UID', 'State', 'Labels', 'Host', 'Last seen', 'Updated'], rows, 'No card matches these filters.'), pager);
}

async function cardPage(uid) {
  const c = await api('GET', `/v1/cards/${uid}`);
  const [audit, findings] = await Promise.all([
    api('GET', `/v1/cards/${uid}/audit-log?limit=200`).catch((e) => ({ error: e })),
    api('GET', `/v1/cards/${uid}/findings`).catch((e) => ({ error: e })),
  ]);
  const actions = h('div', { class: 'actions', id: 'card-actions' }, CARD_ACTIONS.map((a) =>
    h('button', { type: 'button', id: `action-${a.kind}`, class: a.typed ? 'danger' : '', onclick: () => cardAction(c.uid, a) }, a.label)));
  const identities = c.identities.map((i) => h('tr', {}, h('td', {}, i.slot), h('td', {}, i.alg), h('td', {}, badge(i.state)), h('td', { class: 'mono' }, i.spkiSha256), h('td', {}, when(i.attestedAt))));
  const certs = c.certificates.map((x) =>
    h('tr', { dataset: { serial: x.serial } },
      h('td', { class: 'mono' }, x.serial),
      h('td', {}, badge(x.status)),
      h('td', {}, x.subject),
      h('td', {}, when(x.notBefore)),
      h('td', {}, when(x.notAfter)),
      h('td', {}, x.revokedAt ? `${when(x.revokedAt)} (${x.reason || 'unspecified'})` : ''),
      h('td', {}, x.status === 'good' ? h('button', { type: 'button', class: 'danger', onclick: () => revoke(c.uid, x.serial) }, 'Revoke') : '')));
  const jobs = c.jobs.map((j) =>
    h('tr', { dataset: { job: j.id } },
      h('td', {}, j.kind),
      h('td', {}, badge(j.status)),
      h('td', {}, `${j.attempt}/${j.maxAttempts}`),
      h('td', {}, j.createdBy),
      h('td', {}, when(j.createdAt)),
      h('td', {}, when(j.finishedAt)),
      h('td', {}, j.errorCode ? `${j.errorCode}: ${j.errorMessage || ''}` : '')));
  const events = c.events.map((e) => h('tr', {}, h('td', {}, when(e.at)), h('td', {}, e.actor), h('td', {}, e.kind), h('td', { class: 'mono' }, e.subject || '')));
  const auditEl = audit.error
    ? h('p', { class: 'muted' }, `audit log unavailable: ${audit.error.message}`)
    : h('div', {},
        h('p', { class: 'muted', id: 'audit-head' }, audit.head ? `verified head: entry ${audit.head.seq}, signature ${audit.head.verified ? 'verified' : 'NOT verified'}, read ${when(audit.head.receivedAt)}` : 'never read (run "Read audit log")'),
        table(['#', 'Type', 'Entry', 'Received'], audit.items.map((e) => h('tr', {}, h('td', {}, e.seq), h('td', { class: 'mono' }, e.type), h('td', { class: 'mono' }, e.body.length > 64 ? `${e.body.slice(0, 64)}…` : e.body), h('td', {}, when(e.receivedAt)))), 'no entry read yet'));
  const findingsEl = findings.error
    ? h('p', { class: 'muted', id: 'card-findings' }, (findings.error.status === 404 || findings.error.status === 405) && findings.error.code !== 'ERR_OP_UNKNOWN_CARD' ? 'findings are not available on this operator' : `findings unavailable: ${findings.error.message}`)
    : h('div', { id: 'card-findings' }, findingsTable(findings.items || [], false));
  page('card',
    h('h1', {}, 'Card ', h('span', { class: 'mono', id: 'card-uid' }, c.uid), ' ', h('span', { id: 'card-state' }, badge(c.state))),
    dl([['Labels', labelsText(c.labels) || '—'], ['Host', c.hostId || '—'], ['Last seen', when(c.lastSeenAt)], ['Key version', c.kvn], ['Batch', c.batchId || '—'], ['Attestation certificate SHA-256', h('span', { class: 'mono' }, c.attestationCertificateSha256)], ['Created', when(c.createdAt)], ['Updated', when(c.updatedAt)]]),
    actions,
    h('h2', {}, 'Identities'), table(['Slot', 'Algorithm', 'State', 'SPKI SHA-256', 'Attested'], identities),
    h('h2', {}, 'Certificate history'), table(['Serial', 'Status', 'Subject', 'Not before', 'Not after', 'Revoked', ''], certs),
    h('h2', {}, 'Jobs'), h('div', { id: 'card-jobs' }, table(['Kind', 'Status', 'Attempt', 'By', 'Created', 'Finished', 'Error'], jobs)),
    h('h2', {}, 'Audit log (from the card)'), auditEl,
    h('h2', {}, 'Operator events'), table(['At', 'Actor', 'Event', 'Subject'], events),
    h('h2', {}, 'Findings'), findingsEl);
}

/** Polls a job until it is final (or the page changes), re-rendering the card page at each change. */
function followJob(uid, jobId) {
  let last = null;
  let stopped = false;
  const timer = setInterval(async () => {
    if (stopped) return;
    try {
      const { job } = await api('GET', `/v1/jobs/${jobId}`);
      if (job.status !== last) {
        last = job.status;
        flash(`job ${job.kind} ${job.id}: ${job.status}${job.errorCode ? ` (${job.errorCode})` : ''}`, job.status === 'failed');
        if (location.hash === `#/card/${uid}`) await cardPage(uid);
      }
      if (['succeeded', 'failed', 'canceled', 'timed_out'].includes(job.status)) {
        stopped = true;
        clearInterval(timer);
      }
    } catch {
      /* keep polling until the page changes */
    }
  }, 1000);
  cleanup.push(() => {
    stopped = true;
    clearInterval(timer);
  });
}

async function cardAction(uid, a) {
  if (a.typed) {
    if (!(await confirmAction(`${a.label} card ${uid}?`, `This sends a ${a.kind} job to the card.`, uid))) return;
  } else if (!(await confirmAction(`${a.label} card ${uid}?`, `This sends a ${a.kind} job to the card.`, null))) return;
  try {
    const r = await api('POST', `/v1/cards/${uid}/${a.kind}`, { ...a.body, confirm: a.typed ? uid : true });
    flash(`job ${r.job.kind} ${r.job.id}: ${r.job.status}`);
    followJob(uid, r.job.id);
    await cardPage(uid);
  } catch (e) {
    flash(`${a.label} refused: ${e.code}: ${e.message}`, true);
  }
}

async function revoke(uid, serial) {
  if (!(await confirmAction(`Revoke certificate ${serial}?`, 'The serial goes on the next CRL; the card is re-keyed when it serves this certificate.', null))) return;
  try {
    const r = await api('POST', `/v1/certificates/${serial}/revoke`, { reason: 'unspecified', confirm: true });
    flash(`certificate ${serial} revoked (CRL ${r.crl.number}); card action: ${r.cardAction}`);
    if (r.job) followJob(uid, r.job.id);
    await cardPage(uid);
  } catch (e) {
    flash(`revoke refused: ${e.code}: ${e.message}`, true);
  }
}

function campaignCounters(c) {
  const k = c.counters || {};
  const total = Math.max(1, k.targeted || 0);
  const seg = (name) => h('span', { class: `p-${name}`, style: null, dataset: { w: String(((k[name] || 0) / total) * 100) } });
  const bar = h('div', { class: 'progress', id: 'campaign-progress' }, ['succeeded', 'failed', 'canceled', 'running'].map(seg));
  // CSP forbids inline style attributes: widths are set through the CSSOM.
  for (const s of bar.children) s.style.width = `${s.dataset.w}%`;
  return bar;
}

async function campaignsPage(q) {
  const state = q.get('state') || '';
  const params = new URLSearchParams({ limit: '100' });
  if (state) params.set('state', state);
  let res;
  try {
    res = await api('GET', `/v1/campaigns?${params}`);
  } catch (e) {
    if (e.status === 404 && e.code !== 'ERR_OP_UNKNOWN_CARD') {
      page('campaigns', h('h1', {}, 'Campaigns'), h('p', { class: 'muted', id: 'campaigns-unavailable' }, 'Campaigns are not available on this operator.'));
      return;
    }
    throw e;
  }
  const sel = h('select', { id: 'c-state', onchange: () => (location.hash = `#/campaigns${sel.value ? `?state=${sel.value}` : ''}`) }, h('option', { value: '' }, 'any state'), ['running', 'paused', 'canceled', 'aborted', 'completed'].map((s) => h('option', { value: s, selected: s === state }, s)));
  const rows = res.items.map((c) =>
    h('tr', { dataset: { campaign: c.id } },
      h('td', {}, h('a', { href: `#/campaign/${c.id}` }, c.name)),
      h('td', {}, c.kind),
      h('td', {}, badge(c.state)),
      h('td', {}, `${c.counters.succeeded}/${c.counters.targeted} succeeded, ${c.counters.failed} failed`),
      h('td', {}, `${c.ratePerMinute}/min`),
      h('td', {}, when(c.createdAt))));
  page('campaigns', h('h1', {}, 'Campaigns'), h('form', { class: 'filters' }, h('label', {}, 'State', sel)), table(['Name', 'Kind', 'State', 'Progress', 'Rate', 'Created'], rows, 'No campaign.'));
}

async function campaignPage(id) {
  let liveText = '';
  const render = async (c) => {
    const jobs = await api('GET', `/v1/campaigns/${id}/jobs?limit=50`).catch(() => ({ items: [] }));
    const k = c.counters;
    const button = (label, action, danger) =>
      h('button', { type: 'button', id: `campaign-${action}`, class: danger ? 'danger' : '', onclick: () => campaignAction(c, action) }, label);
    page('campaign',
      h('h1', {}, 'Campaign ', h('span', { id: 'campaign-name' }, c.name), ' ', h('span', { id: 'campaign-state' }, badge(c.state))),
      campaignCounters(c),
      h('p', { id: 'campaign-counters' }, `targeted ${k.targeted} · pending ${k.pending} · queued ${k.queued} · running ${k.running} · succeeded ${k.succeeded} · failed ${k.failed} · canceled ${k.canceled}`),
      c.abortReason ? h('p', { class: 'muted', id: 'campaign-abort' }, `aborted: ${c.abortReason}`) : null,
      h('div', { class: 'actions' }, c.state === 'running' ? button('Pause', 'pause') : null, c.state === 'paused' ? button('Resume', 'resume') : null, FINAL_CAMPAIGN.includes(c.state) ? null : button('Cancel campaign', 'cancel', true)),
      dl([['Kind', c.kind], ['Selector', JSON.stringify(c.selector)], ['Rate', `${c.ratePerMinute} per minute`], ['Abort when', `${c.abort.failurePercent}% failed after ${c.abort.minExecuted} executed`], ['Created', `${when(c.createdAt)} by ${c.createdBy}`], ['Finished', when(c.finishedAt)], ['Live', h('span', { id: 'campaign-live' }, liveText)]]),
      h('h2', {}, 'Jobs'),
      table(['Card', 'Kind', 'Status', 'Updated', 'Error'], jobs.items.map((j) => h('tr', {}, h('td', { class: 'mono' }, h('a', { href: `#/card/${j.card}` }, j.card)), h('td', {}, j.kind), h('td', {}, badge(j.status)), h('td', {}, when(j.updatedAt)), h('td', {}, j.errorCode || ''))), 'no job yet'));
  };
  let current = await api('GET', `/v1/campaigns/${id}`);
  await render(current);
  const live = (text) => {
    liveText = text;
    const el = document.getElementById('campaign-live');
    if (el) el.textContent = text;
  };
  if (FINAL_CAMPAIGN.includes(current.state)) {
    live('finished');
    return;
  }
  // Live progress: server-sent events (the CSRF token in the query: EventSource sends no headers).
  // If the stream cannot be opened or breaks, the page polls the campaign every 2 s instead.
  const es = new EventSource(`/v1/campaigns/${id}/events?csrf=${encodeURIComponent(session.csrf || '')}`);
  let rendering = Promise.resolve();
  let poll = null;
  const update = (c, how) => {
    const changed = JSON.stringify(c) !== JSON.stringify(current);
    current = c;
    liveText = `live (${how}) · last update ${new Date().toISOString()}`;
    if (changed) rendering = rendering.then(() => render(c));
    rendering = rendering.then(() => live(liveText));
  };
  es.addEventListener('progress', (ev) => {
    update(JSON.parse(ev.data), 'server-sent events');
    if (FINAL_CAMPAIGN.includes(current.state)) es.close();
  });
  es.onopen = () => live('live (server-sent events)');
  es.onerror = () => {
    if (FINAL_CAMPAIGN.includes(current.state)) {
      es.close();
      live('finished');
      return;
    }
    if (es.readyState !== EventSource.CLOSED || poll) return; // the browser reconnects by itself
    poll = setInterval(async () => {
      try {
        update(await api('GET', `/v1/campaigns/${id}`), 'polling every 2 s');
        if (FINAL_CAMPAIGN.includes(current.state)) clearInterval(poll);
      } catch {
        /* next tick */
      }
    }, 2000);
  };
  cleanup.push(() => {
    es.close();
    if (poll) clearInterval(poll);
  });
}

async function campaignAction(c, action) {
  if (action === 'cancel' && !(await confirmAction(`Cancel campaign ${c.name}?`, 'Jobs not started yet are canceled; this cannot be undone.', null))) return;
  try {
    await api('POST', `/v1/campaigns/${c.id}/${action}`, action === 'cancel' ? { confirm: true } : {});
    flash(`campaign ${c.name}: ${action} sent`);
    if (action !== 'cancel') await campaignPage(c.id);
  } catch (e) {
    flash(`${action} refused: ${e.code}: ${e.message}`, true);
  }
}

function findingsTable(items, withCard) {
  const canResolve = session.role === 'operator' || session.role === 'admin';
  return table(
    ['Check', 'Severity', 'Status', withCard ? 'Card' : null, 'Subject', 'First seen', 'Last seen', 'Resolution', ''].filter((x) => x !== null),
    items.map((f) => {
      const sel = h('select', {}, ['fixed', 'accepted', 'false-positive'].map((r) => h('option', { value: r }, r)));
      return h('tr', { dataset: { finding: f.id } },
        h('td', {}, f.check),
        h('td', {}, badge(f.severity)),
        h('td', {}, badge(f.status)),
        withCard ? h('td', { class: 'mono' }, f.card ? h('a', { href: `#/card/${f.card}` }, f.card) : '—') : null,
        h('td', { class: 'mono' }, f.subject),
        h('td', {}, when(f.firstSeenAt)),
        h('td', {}, when(f.lastSeenAt)),
        h('td', {}, f.resolution ? `${f.resolution}${f.resolvedBy ? ` by ${f.resolvedBy}` : ''}` : ''),
        h('td', {}, f.status === 'open' && canResolve ? h('span', {}, sel, ' ', h('button', { type: 'button', onclick: () => resolveFinding(f, sel.value) }, 'Resolve')) : ''));
    }),
    'No finding.',
  );
}

async function resolveFinding(f, resolution) {
  try {
    await api('POST', `/v1/findings/${f.id}/resolve`, { resolution });
    flash(`finding ${f.check} on ${f.subject}: ${resolution}`);
    await route();
  } catch (e) {
    flash(`resolve refused: ${e.code}: ${e.message}`, true);
  }
}

async function findingsPage(q) {
  const check = q.get('check') || '';
  const status = q.get('status') || 'open';
  const card = q.get('card') || '';
  const params = new URLSearchParams({ limit: '200' });
  if (check) params.set('check', check);
  if (status !== 'any') params.set('status', status);
  if (card) params.set('card', card);
  let res;
  try {
    res = await api('GET', `/v1/findings?${params}`);
  } catch (e) {
    if (e.status === 404 && e.code !== 'ERR_OP_UNKNOWN_CARD') {
      page('findings', h('h1', {}, 'Findings'), h('p', { class: 'muted', id: 'findings-unavailable' }, 'Findings are not available on this operator.'));
      return;
    }
    throw e;
  }
  const checkSel = h('select', { id: 'fi-check' }, h('option', { value: '' }, 'any check'), FINDING_CHECKS.map((c) => h('option', { value: c, selected: c === check }, c)));
  const statusSel = h('select', { id: 'fi-status' }, ['open', 'resolved', 'any'].map((s) => h('option', { value: s, selected: s === status }, s)));
  const cardIn = h('input', { id: 'fi-card', value: card, placeholder: 'card UID' });
  const filters = h('form', {
    class: 'filters',
    onsubmit: (e) => {
      e.preventDefault();
      const n = new URLSearchParams({ check: checkSel.value, status: statusSel.value, card: cardIn.value.trim().toLowerCase() });
      for (const [k, v] of [...n]) if (!v) n.delete(k);
      location.hash = `#/findings?${n}`;
    },
  }, h('label', {}, 'Check', checkSel), h('label', {}, 'Status', statusSel), h('label', {}, 'Card', cardIn), h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  const run = session.role === 'operator' || session.role === 'admin'
    ? h('button', {
        type: 'button',
        id: 'audits-run',
        onclick: async () => {
          try {
            const r = await api('POST', '/v1/audits/run', {});
            flash(`audits run: ${Object.entries(r.checks).map(([k, v]) => `${k} ${v.open} open (${v.new} new, ${v.resolved} resolved)`).join('; ')}`);
            await route();
          } catch (e) {
            flash(`audit run refused: ${e.code}: ${e.message}`, true);
          }
        },
      }, 'Run audits now')
    : null;
  page('findings', h('h1', {}, 'Findings'), filters, h('div', { class: 'actions' }, run), h('div', { id: 'findings-table' }, findingsTable(res.items, true)));
}

// ------------------------------------------------------------------ router

async function route() {
  for (const f of cleanup.splice(0)) f();
  const hash = location.hash || '#/fleet';
  const [path, query] = hash.slice(1).split('?');
  const q = new URLSearchParams(query || '');
  if (!session.csrf && path !== '/sign-in') {
    try {
      const r = await fetch('/console/session', { headers: { 'x-requested-with': 'setls-console', accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
      if (!r.ok) throw new Error('no session');
      setSession(await r.json());
    } catch {
      location.hash = '#/sign-in';
      return;
    }
  }
  try {
    let m;
    if (path === '/sign-in') signInPage();
    else if (path === '/fleet' || path === '/') await fleetPage(q);
    else if ((m = /^\/card\/([0-9a-f]{2,64})$/i.exec(path))) await cardPage(m[1].toLowerCase());
    else if (path === '/campaigns') await campaignsPage(q);
    else if ((m = /^\/campaign\/([A-Za-z0-9-]{1,64})$/.exec(path))) await campaignPage(m[1]);
    else if (path === '/findings') await findingsPage(q);
    else page('not-found', h('h1', {}, 'Not found'), h('p', {}, `No page ${path}.`));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    page('error', h('h1', {}, 'Error'), h('p', { id: 'error-text' }, `${e.code || 'error'}: ${e.message}`));
  }
}

async function signOut() {
  try {
    await fetch('/console/session', { method: 'DELETE', headers: { 'x-csrf-token': session.csrf || '' }, credentials: 'same-origin' });
  } finally {
    session.csrf = null;
    document.getElementById('nav').hidden = true;
    document.getElementById('signout').hidden = true;
    document.getElementById('who').textContent = '';
    location.hash = '#/sign-in';
  }
}

window.addEventListener('hashchange', () => void route());
window.addEventListener('DOMContentLoaded', () => {
  document.getElementById('signout').addEventListener('click', () => void signOut());
  void route();
});
