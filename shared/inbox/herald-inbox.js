// <herald-inbox>: a customer's Herald notification feed behind a bell, kept live over a WebSocket.
// No dependency and no exports, so it loads as an ES module or as a classic <script>; the block
// keeps its names out of the global scope, so loading it twice does no harm.
{
  const PING_MS = 5 * 60 * 1000; // the gateway closes sockets idle for 10 minutes
  const STABLE_MS = 10 * 1000; // a connection open this long resets the backoff
  const BACKOFF_MS = 500;
  const BACKOFF_CAP_MS = 30 * 1000;
  const RELOAD_ON = ['api', 'realtime', 'token', 'customer'];

  const STYLE = `
    :host { position: relative; display: inline-block; color: var(--herald-fg, #1f2937); font: inherit; }
    :host([hidden]), [hidden] { display: none !important; }
    button { font: inherit; cursor: pointer; } button:disabled { cursor: default; opacity: .5; }
    :focus-visible { outline: 2px solid var(--herald-accent, #2563eb); outline-offset: 2px; }
    .bell { position: relative; display: grid; place-items: center; width: 2.5rem; height: 2.5rem;
      padding: 0; border: 0; border-radius: 50%; background: transparent; color: inherit; }
    .bell:hover { background: var(--herald-hover, rgb(0 0 0 / .06)); } .bell svg { width: 1.5rem; height: 1.5rem; }
    .badge { position: absolute; top: 0; right: 0; min-width: 1.1rem; padding: 0 .3rem; box-sizing: border-box;
      border-radius: 999px; background: var(--herald-badge-bg, #dc2626); color: var(--herald-badge-fg, #fff);
      font-size: .7rem; font-weight: 700; line-height: 1.1rem; text-align: center; }
    .panel { position: absolute; z-index: var(--herald-z, 1000); top: calc(100% + .25rem); right: 0;
      width: var(--herald-width, min(24rem, 92vw)); max-height: var(--herald-max-height, 70vh); overflow: auto;
      background: var(--herald-bg, #fff); border: 1px solid var(--herald-border, #e5e7eb);
      border-radius: var(--herald-radius, .5rem); box-shadow: 0 10px 30px rgb(0 0 0 / .15); }
    header { display: flex; align-items: center; justify-content: space-between; gap: .5rem;
      padding: .75rem 1rem; border-bottom: 1px solid var(--herald-border, #e5e7eb); }
    h2 { margin: 0; font-size: 1rem; } ul { margin: 0; padding: 0; list-style: none; }
    .link, .more { border: 0; background: transparent; color: var(--herald-accent, #2563eb); }
    .link { padding: .25rem .5rem; border-radius: .25rem; font-size: .85rem; }
    .status { margin: 0; padding: 0 1rem; color: var(--herald-error, #b91c1c); font-size: .85rem; }
    .status:not(:empty) { padding: .5rem 1rem; } /* kept in the tree so changes are announced */
    li { display: flex; gap: .5rem; align-items: flex-start; padding: .75rem 1rem;
      border-bottom: 1px solid var(--herald-border, #e5e7eb); }
    li[data-read="false"] { background: var(--herald-unread-bg, #eff6ff);
      box-shadow: inset 3px 0 0 var(--herald-accent, #2563eb); }
    .text { flex: 1; min-width: 0; overflow-wrap: anywhere; }
    .title { display: block; }
    .body { margin: .15rem 0; white-space: pre-line; overflow: hidden; display: -webkit-box;
      -webkit-box-orient: vertical; -webkit-line-clamp: var(--herald-body-lines, 4); } /* long bodies stay a glance */
    time { color: var(--herald-muted, #6b7280); font-size: .8rem; }
    .empty { margin: 0; padding: 1.5rem 1rem; color: var(--herald-muted, #6b7280); text-align: center; }
    .more { display: block; width: 100%; padding: .6rem; }
    .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%);
      white-space: nowrap; }`;

  const TEMPLATE = `<style>${STYLE}</style>
    <button type="button" class="bell" part="bell" data-action="toggle" aria-expanded="false" aria-controls="panel">
      <svg viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2"
        stroke-linecap="round" stroke-linejoin="round"><path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/>
        <path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/></svg>
      <span class="badge" part="badge" aria-hidden="true" hidden></span>
    </button>
    <div class="sr-only" part="live" aria-live="polite" aria-atomic="true"></div>
    <section id="panel" class="panel" part="panel" role="region" aria-labelledby="heading" tabindex="-1" hidden>
      <header>
        <h2 id="heading">Notifications</h2>
        <button type="button" class="link" part="read-all" data-action="read-all" disabled>Mark all read</button>
      </header>
      <p class="status" part="status" role="status"></p>
      <ul part="list" aria-labelledby="heading"></ul>
      <p class="empty" part="empty" hidden>No notifications yet.</p>
      <button type="button" class="more" part="more" data-action="more" hidden>Load more</button>
    </section>`;

  // Small steps first: a date within a week reads "3 hours ago", older ones as a date.
  const UNITS = [['second', 60], ['minute', 60], ['hour', 24], ['day', 7]];

  const node = (tag, props) => Object.assign(document.createElement(tag), props);
  const shorten = (s, max = 80) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

  // The token's payload, unverified: the api checks the signature, the browser only needs the customer id.
  const claims = (token) => {
    try {
      const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))));
    } catch {
      return {};
    }
  };

  class HeraldInbox extends HTMLElement {
    static observedAttributes = [...RELOAD_ON, 'locale'];

    #root;
    #el = {};
    #items = [];
    #drawn = new Map(); // notification id → { key, li }: an entry drawn once is kept while it shows the same
    #cursor = null;
    #unread = 0;
    #customer = '';
    #abort = null;
    #loadSeq = 0;
    #backlog = null; // socket messages seen while a page is in flight; replayed over it (null: none in flight)
    #seen = new Set(); // ids already announced, so a repeated "created" is announced once
    #ws = null;
    #retries = 0;
    #missed = false; // a socket closed since the last page, so messages may have been missed
    #timers = {};
    #startQueued = false;

    constructor() {
      super();
      this.#root = this.attachShadow({ mode: 'open' });
      this.#root.innerHTML = TEMPLATE;
      for (const name of ['bell', 'badge', 'live', 'panel', 'status', 'list', 'empty', 'more', 'read-all']) {
        this.#el[name] = this.#root.querySelector(`[part="${name}"]`);
      }
      this.#root.addEventListener('click', (e) => this.#onClick(e));
      this.#root.addEventListener('keydown', (e) => this.#onKey(e));
    }

    connectedCallback() {
      document.addEventListener('click', this.#onOutside);
      this.#startSoon();
    }

    disconnectedCallback() {
      document.removeEventListener('click', this.#onOutside);
      this.#stop();
      this.dataset.state = 'closed';
    }

    attributeChangedCallback(name, old, value) {
      if (old === value || !this.isConnected) return;
      if (RELOAD_ON.includes(name)) return this.#startSoon();
      this.#renderBadge(); // locale: numbers and dates
      this.#render();
    }

    // Coalesces several attribute changes (and an upgrade's connect) into one start.
    #startSoon() {
      if (this.#startQueued) return;
      this.#startQueued = true;
      queueMicrotask(() => {
        this.#startQueued = false;
        if (this.isConnected) this.#start();
      });
    }

    #start() {
      this.#stop();
      this.#abort = new AbortController();
      this.#items = [];
      this.#cursor = null;
      this.#retries = 0;
      this.#missed = false;
      this.#customer = this.getAttribute('customer') || String(claims(this.#token).customer_id ?? '');
      this.#setUnread(0);
      this.#status('');
      this.#render();
      this.#load();
      this.#connect();
    }

    #stop() {
      this.#abort?.abort();
      this.#loadSeq++;
      this.#backlog = null;
      this.#clearTimers();
      const ws = this.#ws;
      this.#ws = null; // before close(), so its close event does not reconnect
      ws?.close();
    }

    get #token() { return this.getAttribute('token') || ''; }

    get #locale() { return this.getAttribute('locale') || navigator.language; }

    #intl(Kind, options) {
      try {
        return new Kind(this.#locale, options);
      } catch {
        return new Kind(undefined, options); // an invalid locale attribute
      }
    }

    // ---- HTTP api

    async #request(method, path) {
      const signal = this.#abort.signal;
      const base = (this.getAttribute('api') || '').replace(/\/+$/, '');
      const headers = { Accept: 'application/json', Authorization: `Bearer ${this.#token}` };
      const url = `${base}/customers/${encodeURIComponent(this.#customer)}/${path}`;
      const res = await fetch(url, { method, signal, headers });
      const body = await res.json().catch(() => ({}));
      signal.throwIfAborted();
      if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
      return body;
    }

    async #load(more = false) {
      if (!this.getAttribute('api') || !this.#token || !this.#customer) {
        return this.#status('Missing api, token or customer.');
      }
      const seq = ++this.#loadSeq;
      this.#backlog ??= [];
      const size = Math.min(100, Math.max(1, parseInt(this.getAttribute('page-size'), 10) || 20));
      const query = new URLSearchParams({ limit: size });
      if (more) query.set('cursor', this.#cursor);
      this.#missed = false;
      try {
        const page = await this.#request('GET', `notifications?${query}`);
        if (seq !== this.#loadSeq) return; // a newer load replaces this one
        const items = Array.isArray(page.items) ? page.items : [];
        this.#items = more ? this.#items.concat(items.filter((e) => !this.#find(e.notification_id))) : items;
        this.#cursor = page.next_cursor ?? null;
        this.#setUnread(page.unread);
        this.#status('');
      } catch (err) {
        if (seq !== this.#loadSeq || err.name === 'AbortError') return;
        this.#missed = true; // the socket's next open tries again
        this.#status(`Could not load notifications: ${err.message}`);
      }
      // The page may predate messages the socket delivered meanwhile: apply them again on top.
      const backlog = this.#backlog;
      this.#backlog = null;
      backlog.forEach((msg) => this.#apply(msg));
      this.#render();
    }

    #markOne(id) {
      const entry = this.#find(id);
      if (entry && !entry.read) this.#mark([entry], `${encodeURIComponent(id)}/read`, this.#unread - 1);
    }

    // Optimistic: the entries show read at once and are put back if the api refuses.
    async #mark(entries, path, optimisticUnread) {
      const before = this.#unread;
      const setRead = (read) => entries.forEach((e) => {
        const now = this.#find(e.notification_id); // a page may have landed meanwhile
        if (now) now.read = read;
      });
      setRead(true);
      this.#setUnread(optimisticUnread);
      this.#render();
      try {
        const res = await this.#request('POST', `notifications/${path}`);
        setRead(true);
        this.#setUnread(res.unread);
        this.#status('');
      } catch (err) {
        if (err.name === 'AbortError') return;
        setRead(false);
        this.#setUnread(before);
        this.#status(`Could not mark as read: ${err.message}`);
      }
      this.#render();
    }

    // ---- WebSocket

    #socketUrl() {
      const realtime = this.getAttribute('realtime');
      if (!realtime || !this.#token) return null;
      const url = new URL(realtime, location.href);
      url.protocol = url.protocol.replace(/^http/, 'ws');
      url.searchParams.set('token', this.#token); // browsers cannot set headers on a WebSocket
      return url.href;
    }

    #connect() {
      let ws = null;
      try {
        const url = this.#socketUrl();
        if (url) ws = new WebSocket(url);
      } catch (err) {
        this.#status(`Invalid realtime URL: ${err.message}`);
      }
      if (!ws) {
        this.dataset.state = 'closed'; // the feed still loads, without live updates
        return;
      }
      this.#ws = ws;
      this.dataset.state = this.#retries ? 'reconnecting' : 'connecting';
      ws.onopen = () => {
        this.dataset.state = 'open';
        this.#timers.ping = setInterval(() => ws.send(JSON.stringify({ action: 'ping' })), PING_MS);
        this.#timers.stable = setTimeout(() => (this.#retries = 0), STABLE_MS);
        if (this.#missed) this.#load();
      };
      ws.onmessage = (e) => this.#onMessage(e.data);
      ws.onclose = () => ws === this.#ws && this.#reconnect();
    }

    // Full jitter: a random delay up to 500 ms · 2^retries, capped; a refused token backs off the same way.
    #reconnect() {
      this.#ws = null;
      this.#missed = true;
      this.#clearTimers();
      this.dataset.state = 'reconnecting';
      const delay = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_MS * 2 ** this.#retries++);
      this.#timers.retry = setTimeout(() => this.#connect(), delay);
    }

    // clearTimeout clears intervals too: browsers keep one list of timers.
    #clearTimers() { Object.values(this.#timers).forEach(clearTimeout); }

    #onMessage(data) {
      let msg;
      try { msg = JSON.parse(data); } catch { return; } // not JSON: ignored
      if (!msg || typeof msg !== 'object') return;
      this.#apply(msg);
      this.#backlog?.push(msg);
    }

    #apply(msg) {
      const n = msg.notification && typeof msg.notification.notification_id === 'string' ? msg.notification : null;
      const at = n ? this.#items.findIndex((e) => e.notification_id === n.notification_id) : -1;
      switch (msg.type) {
        case 'notification.created':
          if (!n) return;
          if (at < 0) this.#items.unshift(n);
          this.#announce(n);
          break;
        case 'notification.updated':
          if (!n) return;
          // An update's `read` is always false: reads come as feed.read, so a read entry stays read.
          if (at >= 0) this.#items[at] = { ...n, read: this.#items[at].read || n.read };
          break;
        case 'feed.read': // without an entry: read-all
          if (msg.notification != null && !n) return;
          for (const e of this.#items) if (!n || e.notification_id === n.notification_id) e.read = true;
          break;
        default:
          return; // pong, or a type this version does not know
      }
      this.#setUnread(msg.unread);
      this.#render();
    }

    #announce(n) {
      if (this.#seen.has(n.notification_id)) return;
      this.#seen.add(n.notification_id);
      this.#el.live.textContent = `New notification: ${shorten(n.title || n.body || '')}`;
      this.dispatchEvent(new CustomEvent('herald-notification', { detail: n, bubbles: true }));
    }

    // ---- UI

    #onClick(e) {
      const target = e.target.closest('[data-action]');
      switch (target?.dataset.action) {
        case 'toggle': return this.#toggle(this.#el.panel.hidden);
        case 'read': return this.#markOne(target.closest('li').dataset.id);
        case 'read-all': return this.#mark(this.#items.filter((e) => !e.read), 'read-all', 0);
        case 'more':
          if (!this.#backlog && this.#cursor) this.#load(true); // one page at a time
      }
    }

    #onKey(e) {
      if (e.key !== 'Escape' || this.#el.panel.hidden) return;
      e.stopPropagation();
      this.#toggle(false);
      this.#el.bell.focus();
    }

    // A click elsewhere on the page closes the panel (an arrow: one reference to add and remove).
    #onOutside = (e) => {
      if (!this.#el.panel.hidden && !e.composedPath().includes(this)) this.#toggle(false);
    };

    #toggle(open) {
      this.#el.panel.hidden = !open;
      this.#el.bell.setAttribute('aria-expanded', String(open));
      if (open) this.#render(); // refreshes the relative dates
    }

    #status(text) { this.#el.status.textContent = text; }

    #find(id) { return this.#items.find((e) => e.notification_id === id); }

    #setUnread(value) {
      const n = Math.max(0, Math.trunc(Number(value)));
      if (!Number.isFinite(n)) return; // a response or message without a count
      const changed = n !== this.#unread;
      this.#unread = n;
      this.dataset.unread = String(n);
      this.#renderBadge();
      if (changed) this.dispatchEvent(new CustomEvent('herald-unread', { detail: { unread: n }, bubbles: true }));
    }

    #renderBadge() {
      const { bell, badge } = this.#el;
      const number = this.#intl(Intl.NumberFormat);
      const count = number.format(this.#unread);
      badge.hidden = this.#unread === 0;
      badge.textContent = this.#unread > 99 ? `${number.format(99)}+` : count; // data-unread keeps the exact count
      bell.setAttribute('aria-label', `Notifications, ${count} unread`);
      this.#el['read-all'].disabled = this.#unread === 0;
    }

    #render() {
      const { list, empty, more } = this.#el;
      // An entry drawn anew drops focus from a button inside it: keep it on the same entry.
      const active = this.#root.activeElement;
      const activeId = active?.closest('li')?.dataset.id;
      const rel = this.#intl(Intl.RelativeTimeFormat, { numeric: 'auto' });
      const abs = this.#intl(Intl.DateTimeFormat, { dateStyle: 'medium', timeStyle: 'short' });
      const lis = this.#items.map((e) => this.#drawnItem(e, rel, abs));
      // Move only what is out of place: an entry left where it is keeps focus, and a click
      // on its button lands even while a status update or a new entry arrives.
      lis.forEach((li, i) => {
        if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
      });
      while (list.children.length > lis.length) list.lastElementChild.remove();
      const shown = new Set(this.#items.map((e) => e.notification_id));
      for (const id of this.#drawn.keys()) if (!shown.has(id)) this.#drawn.delete(id);
      list.setAttribute('aria-busy', String(this.#backlog !== null));
      empty.hidden = this.#items.length > 0 || this.#backlog !== null;
      more.hidden = !this.#cursor;
      this.dataset.items = String(this.#items.length);
      if (active && (!active.isConnected || active.hidden || active.disabled)) {
        const li = activeId && [...list.children].find((el) => el.dataset.id === activeId);
        (li?.querySelector('[data-action="read"]') ?? li ?? this.#el.panel).focus();
      }
    }

    // The entry's element: the one drawn before if it shows the same (the status is not shown),
    // its relative time brought up to date.
    #drawnItem(e, rel, abs) {
      const key = JSON.stringify([Boolean(e.read), e.title ?? '', e.body ?? '', e.created_at ?? '']);
      const drawn = this.#drawn.get(e.notification_id);
      if (drawn?.key === key) {
        drawn.li.querySelector('time')?.replaceWith(this.#time(e.created_at, rel, abs));
        return drawn.li;
      }
      const li = this.#item(e, rel, abs);
      this.#drawn.set(e.notification_id, { key, li });
      return li;
    }

    #item(e, rel, abs) {
      const li = node('li', { tabIndex: -1 });
      li.setAttribute('part', 'item');
      li.dataset.id = e.notification_id;
      li.dataset.read = String(Boolean(e.read));
      const text = node('div', { className: 'text' });
      if (!e.read) text.append(node('span', { className: 'sr-only', textContent: 'Unread: ' }));
      if (e.title) text.append(node('strong', { className: 'title', textContent: e.title }));
      text.append(node('p', { className: 'body', textContent: e.body ?? '' }), this.#time(e.created_at, rel, abs));
      li.append(text);
      if (!e.read) {
        const button = node('button', { type: 'button', className: 'link', textContent: 'Mark read' });
        button.dataset.action = 'read';
        button.setAttribute('aria-label', `Mark read: ${shorten(e.title || e.body || '', 60)}`);
        li.append(button);
      }
      return li;
    }

    #time(iso, rel, abs) {
      const time = node('time', { dateTime: iso ?? '', textContent: iso ?? '' });
      const ms = Date.parse(iso);
      if (Number.isNaN(ms)) return time;
      time.title = abs.format(ms);
      let delta = (ms - Date.now()) / 1000;
      for (const [unit, size] of UNITS) {
        if (Math.abs(delta) < size) return Object.assign(time, { textContent: rel.format(Math.round(delta), unit) });
        delta /= size;
      }
      return Object.assign(time, { textContent: time.title });
    }
  }

  if (!customElements.get('herald-inbox')) customElements.define('herald-inbox', HeraldInbox);
}
