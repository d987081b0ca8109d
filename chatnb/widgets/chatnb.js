// The front ends of chatnb.widgets: one anywidget ES module (plain JavaScript, no build step) for
// ChatView (the transcript), MessageComposer, ParticipantList and EventLog; each model's `_kind` trait
// says which one to draw.
//
// The transcript: the kernel sends one small custom message per change (add / patch / remove a message by id; reset and
// older answer this view's requests; see chatnb/widgets/_transcript.py). This module patches its DOM in
// place, so the scroll position and any text selection survive updates. Messages live in blocks of
// BLOCK; a block far outside the visible area is emptied and keeps only its height (render windowing),
// so the DOM stays light however much history is loaded. Times are shown in the browser's time zone.

const BLOCK = 40;
const KEEP_RENDERED = "1500px 0px"; // blocks this close to the visible area stay rendered
const GROUP_GAP_MS = 5 * 60 * 1000; // a sender's messages further apart than this start a new group
const BOTTOM_SLACK = 48; // px: "at the bottom" (new messages then scroll into view)
const TOP_SLACK = 120; // px: scrolling this close to the top loads older messages
const OLDER_N = 100;
const AVATAR_COLOURS = 8;

function h(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "html") node.innerHTML = value; // only ever kernel-rendered, sanitised HTML
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// Keys typed in a widget are the widget's: the notebook's shortcuts (Shift+Enter runs a cell, arrows move
// between cells) must not fire from a composer or the transcript. JupyterLab honours
// data-lm-suppress-shortcuts; Notebook 7 handles shortcuts while the event descends from the document, so
// the widget takes its keys on the way down, at the window, and handles them itself (`onKey`; default
// actions such as typing still happen). Tab and Escape go on as usual. Returns the remover.
function ownKeys(root, onKey) {
  root.setAttribute("data-lm-suppress-shortcuts", "true");
  const take = (e) => {
    if (!root.contains(e.target) || e.key === "Tab" || (e.key === "Escape" && !e.target.closest(".chatnb-editor"))) return;
    e.stopPropagation();
    if (onKey) onKey(e);
  };
  window.addEventListener("keydown", take, true);
  return () => window.removeEventListener("keydown", take, true);
}

const cmp = (a, b) => a.k - b.k || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
const dayOf = (ms) => new Date(ms).toDateString();

function dayLabel(ms) {
  const day = dayOf(ms);
  const now = new Date();
  if (day === now.toDateString()) return "Today";
  if (day === new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1).toDateString()) return "Yesterday";
  return dayFmt.format(new Date(ms));
}

function timeTag(ms) {
  const date = new Date(ms);
  return h("time", { datetime: date.toISOString(), title: fullFmt.format(date), text: timeFmt.format(date) });
}

function initials(name) {
  const words = (name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?")[0];
  return letters.toUpperCase();
}

function colourOf(id) {
  let hash = 0;
  for (const c of id || "") hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return hash % AVATAR_COLOURS;
}

function namesText(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

class Transcript {
  constructor(model, el) {
    this.model = model;
    this.viewId = Math.random().toString(36).slice(2);
    this.byId = new Map(); // id -> record {m, block, row, deco}
    this.blocks = []; // [{recs, el, live, height}]
    this.more = true;
    this.loading = false;
    this.opened = false;
    this.newCount = 0;
    this.visible = false;
    this.armed = false; // the next message from others while out of sight gets the unread divider
    this.unreadId = null;
    this.seenK = 0;
    this.lastOwn = null;
    this.timers = new Set();
    this.build(el);
    this.listen();
    model.send({ op: "hello", view: this.viewId });
  }

  // -- structure ----------------------------------------------------------------------------------

  build(el) {
    const title = this.model.get("title");
    this.older = h("button", { type: "button", class: "chatnb-older", text: "Load older messages",
      onclick: () => this.requestOlder() });
    this.top = h("div", { class: "chatnb-top" }, [this.older]);
    this.list = h("div", { class: "chatnb-log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
      "aria-label": title ? `Messages: ${title}` : "Messages", tabindex: "0" });
    this.scroller = h("div", { class: "chatnb-scroller" }, [this.top, this.list]);
    this.jump = h("button", { type: "button", class: "chatnb-jump", hidden: true,
      onclick: () => this.scrollToBottom(true) });
    this.typing = h("div", { class: "chatnb-typing", "aria-live": "polite" });
    this.error = h("div", { class: "chatnb-error", role: "alert" });
    this.header = h("div", { class: "chatnb-view-title", role: "heading", "aria-level": "3", text: title,
      hidden: !title });
    this.root = h("div", { class: "chatnb-view" }, [
      this.header, h("div", { class: "chatnb-frame" }, [this.scroller, this.jump]), this.typing, this.error,
    ]);
    el.append(this.root);
    this.timers.add(ownKeys(this.root, (e) => this.onKey(e)));
    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    this.windowing = new IntersectionObserver((entries) => this.onBlocks(entries),
      { root: this.scroller, rootMargin: KEEP_RENDERED });
    this.sight = new IntersectionObserver((entries) => this.onSight(entries), { threshold: 0.01 });
    this.sight.observe(this.root);
    this.onVisibility = () => this.onSight([]);
    document.addEventListener("visibilitychange", this.onVisibility);
    this.showTyping();
    this.showError();
    this.showTop();
  }

  listen() {
    const on = (name, fn) => { this.model.on(name, fn); this.timers.add(() => this.model.off(name, fn)); };
    on("msg:custom", (msg) => this.onMessage(msg));
    on("change:typing", () => this.showTyping());
    on("change:error", () => this.showError());
    on("change:status", () => this.showTop());
    on("change:receipts", () => this.refreshOwn());
    on("change:title", () => {
      const title = this.model.get("title");
      this.header.textContent = title;
      this.header.hidden = !title;
      this.list.setAttribute("aria-label", title ? `Messages: ${title}` : "Messages");
    });
  }

  destroy() {
    for (const off of this.timers) off();
    this.windowing.disconnect();
    this.sight.disconnect();
    document.removeEventListener("visibilitychange", this.onVisibility);
    clearTimeout(this.seenTimer);
  }

  // -- messages from the kernel -------------------------------------------------------------------

  onMessage(msg) {
    if (msg.to && msg.to !== this.viewId) return;
    if (msg.op === "add") this.live(() => this.upsert(msg.m), msg.m);
    else if (msg.op === "patch") this.patch(msg.id, msg.m);
    else if (msg.op === "remove") this.anchored(() => this.remove(msg.id));
    else if (msg.op === "replace") this.anchored(() => { this.remove(msg.id); this.upsert(msg.m); });
    else if (msg.op === "reset") this.onReset(msg);
    else if (msg.op === "older") this.onOlder(msg);
    this.showTop();
  }

  onReset(msg) {
    const first = !this.opened && this.byId.size === 0;
    const oldest = this.oldest();
    this.busy(() => this.anchored(() => msg.messages.forEach((m) => this.upsert(m))));
    if (first || !oldest || (msg.messages.length && cmp(msg.messages[0], oldest.m) <= 0)) this.more = msg.more;
    if (msg.status !== "loading") this.opened = true;
    if (first) this.scrollToBottom(false);
    this.scheduleSeen();
  }

  onOlder(msg) {
    this.loading = false;
    this.busy(() => this.anchored(() => msg.messages.forEach((m) => this.upsert(m)), false));
    this.more = msg.failed ? true : msg.more && msg.messages.length > 0; // failed: scrolling up retries
    this.showTop();
    if (this.more && !msg.failed && this.scroller.scrollTop < TOP_SLACK) this.later(() => this.requestOlder(), 50);
  }

  // A live change: new messages follow the bottom only if the reader is there (or sent it).
  live(fn, m) {
    const mine = m.s === this.model.get("user_id") || m.st === "sending";
    const known = this.byId.has(m.id);
    const atBottom = this.atBottom();
    if (!known && !mine && m.t !== "system" && !this.isVisible() && this.armed) {
      this.unreadId = m.id;
      this.armed = false;
    }
    if (mine && !known) this.clearUnread();
    this.anchored(fn, true);
    if (!known && (mine || atBottom)) this.scrollToBottom(false);
    else if (!known && !this.isLast(m.id)) return;
    else if (!known) {
      this.newCount += 1;
      this.jump.hidden = false;
      this.jump.textContent = `${this.newCount} new message${this.newCount === 1 ? "" : "s"} ↓`;
      this.jump.setAttribute("aria-label", `${this.newCount} new, go to the latest message`);
    }
    this.scheduleSeen();
  }

  upsert(m) {
    const rec = this.byId.get(m.id);
    if (rec) {
      rec.m = m;
      this.rerender(rec);
      return;
    }
    this.insert({ m, block: null, row: null, deco: "" });
  }

  patch(id, fields) {
    const rec = this.byId.get(id);
    if (!rec) return;
    const m = { ...rec.m };
    for (const [key, value] of Object.entries(fields)) {
      if (value === null) delete m[key];
      else m[key] = value;
    }
    this.anchored(() => {
      if (m.k !== rec.m.k || m.id !== rec.m.id) {
        this.remove(id);
        this.insert({ m, block: null, row: null, deco: "" });
      } else {
        rec.m = m;
        this.rerender(rec);
      }
    });
  }

  insert(rec) {
    this.byId.set(rec.m.id, rec);
    const block = this.blockFor(rec.m);
    let i = block.recs.length;
    while (i > 0 && cmp(block.recs[i - 1].m, rec.m) > 0) i -= 1;
    block.recs.splice(i, 0, rec);
    rec.block = block;
    if (block.live) {
      const after = block.recs[i + 1];
      block.el.insertBefore(this.render(rec), after ? after.row : null);
    }
    const next = this.next(rec);
    if (next) this.redecorate(next);
    this.trackOwn(rec);
  }

  remove(id) {
    const rec = this.byId.get(id);
    if (!rec) return;
    const next = this.next(rec);
    this.byId.delete(id);
    const block = rec.block;
    block.recs.splice(block.recs.indexOf(rec), 1);
    if (rec.row) rec.row.remove();
    if (!block.recs.length) {
      this.windowing.unobserve(block.el);
      block.el.remove();
      this.blocks.splice(this.blocks.indexOf(block), 1);
    }
    if (next) this.redecorate(next);
    if (this.lastOwn === rec) this.refreshOwn(true);
  }

  blockFor(m) {
    const blocks = this.blocks;
    const last = blocks[blocks.length - 1];
    if (!last) return this.newBlock(0);
    if (cmp(m, last.recs[last.recs.length - 1].m) > 0) {
      return last.recs.length >= BLOCK ? this.newBlock(blocks.length) : last;
    }
    const first = blocks[0];
    if (cmp(m, first.recs[0].m) < 0) return first.recs.length >= BLOCK ? this.newBlock(0) : first;
    let lo = 0;
    let hi = blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (cmp(blocks[mid].recs[0].m, m) <= 0) lo = mid;
      else hi = mid - 1;
    }
    return blocks[lo];
  }

  newBlock(at) {
    const block = { recs: [], el: h("div", { class: "chatnb-block" }), live: true, height: 0 };
    const before = this.blocks[at];
    this.list.insertBefore(block.el, before ? before.el : null);
    this.blocks.splice(at, 0, block);
    this.windowing.observe(block.el);
    return block;
  }

  prev(rec) {
    const recs = rec.block.recs;
    const i = recs.indexOf(rec);
    if (i > 0) return recs[i - 1];
    const b = this.blocks.indexOf(rec.block);
    const block = this.blocks[b - 1];
    return block ? block.recs[block.recs.length - 1] : null;
  }

  next(rec) {
    const recs = rec.block.recs;
    const i = recs.indexOf(rec);
    if (i < recs.length - 1) return recs[i + 1];
    const block = this.blocks[this.blocks.indexOf(rec.block) + 1];
    return block ? block.recs[0] : null;
  }

  oldest() {
    return this.blocks.length ? this.blocks[0].recs[0] : null;
  }

  isLast(id) {
    const last = this.blocks[this.blocks.length - 1];
    return !!last && last.recs[last.recs.length - 1].m.id === id;
  }

  // -- rendering ------------------------------------------------------------------------------------

  decoration(rec) {
    const prev = this.prev(rec);
    const m = rec.m;
    const at = m.at || m.k;
    const newDay = !prev || dayOf(prev.m.at || prev.m.k) !== dayOf(at);
    const first = newDay || !prev || prev.m.t === "system" || m.t === "system" || prev.m.s !== m.s
      || at - (prev.m.at || prev.m.k) > GROUP_GAP_MS;
    return { newDay, first, unread: this.unreadId === m.id };
  }

  render(rec) {
    const deco = this.decoration(rec);
    rec.deco = JSON.stringify(deco);
    const m = rec.m;
    const me = this.model.get("user_id");
    const row = h("div", { class: "chatnb-row", "data-id": m.id });
    if (deco.newDay) {
      row.append(h("div", { class: "chatnb-day", role: "separator" }, [h("span", { text: dayLabel(m.at || m.k) })]));
    }
    if (deco.unread) row.append(h("div", { class: "chatnb-unread", role: "separator", text: "New messages" }));
    row.append(m.t === "system" ? this.renderSystem(m) : this.renderMessage(rec, m, m.s === me, deco.first));
    rec.row = row;
    return row;
  }

  renderSystem(m) {
    return h("div", { class: "chatnb-msg chatnb-system", tabindex: "-1", role: "article" }, [
      h("span", { class: "chatnb-system-text", html: m.h }), " ", timeTag(m.at || m.k),
    ]);
  }

  renderMessage(rec, m, own, first) {
    const name = own ? "You" : m.n || m.s || "Unknown";
    const classes = ["chatnb-msg", own ? "chatnb-own" : "chatnb-other"];
    if (first) classes.push("chatnb-first");
    if (m.d) classes.push("chatnb-deleted");
    if (m.st) classes.push(`chatnb-st-${m.st}`);
    const avatar = own ? null : h("div", { class: `chatnb-avatar chatnb-av-${colourOf(m.s)}`, "aria-hidden": "true",
      text: first ? initials(m.n || m.s) : "" });
    const meta = h("div", { class: "chatnb-meta" }, [
      h("span", { class: "chatnb-name", text: name }), " ", timeTag(m.at || m.k),
    ]);
    if (!first) meta.classList.add("chatnb-sr");
    const bubble = m.d
      ? h("div", { class: "chatnb-bubble", text: "This message was deleted" })
      : h("div", { class: "chatnb-bubble", html: m.h });
    const foot = h("div", { class: "chatnb-foot" });
    const body = h("div", { class: "chatnb-body" }, [meta, bubble, foot]);
    const msg = h("div", { class: classes.join(" "), tabindex: "-1", role: "article", "data-id": m.id,
      onfocusin: () => this.roving(msg, true), onfocusout: (e) => { if (!msg.contains(e.relatedTarget)) this.roving(msg, false); } },
      [avatar, body]);
    if (own && !m.d && !m.st) {
      msg.append(h("div", { class: "chatnb-actions" }, [
        h("button", { type: "button", class: "chatnb-edit", tabindex: "-1", "aria-label": "Edit message", title: "Edit",
          text: "✎", onclick: () => this.startEdit(rec) }),
        h("button", { type: "button", class: "chatnb-delete", tabindex: "-1", "aria-label": "Delete message", title: "Delete",
          text: "🗑", onclick: () => this.confirmDelete(rec) }),
      ]));
    }
    rec.foot = foot;
    this.fillFoot(rec);
    return msg;
  }

  fillFoot(rec) {
    const foot = rec.foot;
    if (!foot) return;
    const m = rec.m;
    foot.replaceChildren();
    if (m.e && !m.d) foot.append(h("span", { class: "chatnb-edited", text: "edited" }));
    if (m.st === "sending") foot.append(h("span", { class: "chatnb-status", text: "Sending…" }));
    else if (m.st === "saving") foot.append(h("span", { class: "chatnb-status", text: "Saving…" }));
    else if (m.st === "deleting") foot.append(h("span", { class: "chatnb-status", text: "Deleting…" }));
    else if (m.st === "failed") {
      foot.append(h("span", { class: "chatnb-status chatnb-failed", text: `Not sent${m.err ? `: ${m.err}` : ""}` }),
        h("button", { type: "button", class: "chatnb-retry", text: "Retry", "aria-label": "Retry sending this message",
          onclick: () => this.model.send({ op: "retry", id: m.id }) }));
    } else if (rec === this.lastOwn) {
      const me = this.model.get("user_id");
      const readers = Object.entries(this.model.get("receipts") || {})
        .filter(([id, r]) => id !== me && r.k >= m.k).map(([id, r]) => r.n || id).sort();
      foot.append(h("span", { class: "chatnb-receipt", text: readers.length ? `Seen by ${namesText(readers)}` : "Sent" }));
    }
    foot.hidden = !foot.childNodes.length;
  }

  rerender(rec) {
    if (!rec.row) return;
    const focused = rec.row.contains(document.activeElement);
    const old = rec.row;
    old.replaceWith(this.render(rec));
    if (focused) rec.row.querySelector(".chatnb-msg")?.focus();
    this.trackOwn(rec);
  }

  redecorate(rec) {
    if (rec.row && JSON.stringify(this.decoration(rec)) !== rec.deco) this.rerender(rec);
  }

  trackOwn(rec) {
    const me = this.model.get("user_id");
    if (rec.m.s === me && !rec.m.d && rec.m.t !== "system" && !rec.m.st) {
      if (!this.lastOwn || !this.byId.has(this.lastOwn.m.id) || cmp(rec.m, this.lastOwn.m) >= 0) {
        const old = this.lastOwn;
        this.lastOwn = rec;
        if (old && old !== rec) this.fillFoot(old);
        this.fillFoot(rec);
      }
    } else if (rec === this.lastOwn) this.refreshOwn(true);
  }

  refreshOwn(search = false) {
    if (search) {
      const old = this.lastOwn;
      this.lastOwn = null;
      const me = this.model.get("user_id");
      for (let b = this.blocks.length - 1; b >= 0 && !this.lastOwn; b -= 1) {
        const recs = this.blocks[b].recs;
        for (let i = recs.length - 1; i >= 0; i -= 1) {
          const m = recs[i].m;
          if (m.s === me && !m.d && m.t !== "system" && !m.st) { this.lastOwn = recs[i]; break; }
        }
      }
      if (old && old !== this.lastOwn && this.byId.has(old.m.id)) this.fillFoot(old);
    }
    if (this.lastOwn) this.fillFoot(this.lastOwn);
  }

  // -- render windowing -----------------------------------------------------------------------------

  onBlocks(entries) {
    if (!this.scroller.clientHeight) return; // hidden: nothing is in sight, and nothing need change
    for (const entry of entries) {
      const block = this.blocks.find((b) => b.el === entry.target);
      if (!block) continue;
      if (entry.isIntersecting && !block.live) this.busy(() => this.hydrate(block));
      else if (!entry.isIntersecting && block.live && !block.el.contains(document.activeElement)) this.dehydrate(block);
    }
  }

  hydrate(block) {
    block.live = true;
    block.el.style.height = "";
    block.el.replaceChildren(...block.recs.map((rec) => this.render(rec)));
  }

  dehydrate(block) {
    block.height = block.el.offsetHeight;
    block.live = false;
    block.el.style.height = `${block.height}px`;
    block.el.replaceChildren();
    for (const rec of block.recs) { rec.row = null; rec.foot = null; }
  }

  // -- scrolling ------------------------------------------------------------------------------------

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= BOTTOM_SLACK;
  }

  scrollToBottom(focusLast) {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.newCount = 0;
    this.jump.hidden = true;
    if (focusLast) {
      const rows = this.list.querySelectorAll(".chatnb-msg");
      rows[rows.length - 1]?.focus({ preventScroll: true });
    }
  }

  // Run fn keeping what the reader looks at in place (or the bottom in view, with stick).
  anchored(fn, stick = true) {
    const s = this.scroller;
    const stuck = stick && this.atBottom();
    const top = s.getBoundingClientRect().top;
    const anchor = stuck ? null : this.firstVisibleRow(top);
    const offset = anchor ? anchor.getBoundingClientRect().top - top : 0;
    fn();
    if (stuck) s.scrollTop = s.scrollHeight;
    else if (anchor && anchor.isConnected) s.scrollTop += anchor.getBoundingClientRect().top - top - offset;
  }

  firstVisibleRow(top) {
    for (const block of this.blocks) {
      if (!block.live || block.el.getBoundingClientRect().bottom <= top) continue;
      for (const rec of block.recs) if (rec.row && rec.row.getBoundingClientRect().bottom > top) return rec.row;
    }
    return null;
  }

  onScroll() {
    if (this.scrollQueued) return;
    this.scrollQueued = true;
    requestAnimationFrame(() => {
      this.scrollQueued = false;
      if (this.atBottom()) {
        this.newCount = 0;
        this.jump.hidden = true;
      }
      if (this.scroller.scrollTop < TOP_SLACK && this.opened) this.requestOlder();
      this.scheduleSeen();
    });
  }

  requestOlder() {
    const oldest = this.oldest();
    if (this.loading || !this.more || !this.opened) return;
    this.loading = true;
    this.showTop();
    this.model.send({ op: "older", view: this.viewId, k: oldest ? oldest.m.k : Number.MAX_SAFE_INTEGER,
      id: oldest ? oldest.m.id : "", n: OLDER_N });
  }

  showTop() {
    const status = this.model.get("status");
    this.older.hidden = !this.more || status === "loading";
    this.older.disabled = this.loading;
    this.older.textContent = this.loading ? "Loading older messages…" : "Load older messages";
    let note = this.top.querySelector(".chatnb-start");
    const text = status === "loading" ? "Loading messages…"
      : !this.more ? (this.byId.size ? "This is the start of the conversation." : "No messages yet.") : "";
    if (!note) {
      note = h("div", { class: "chatnb-start" });
      this.top.append(note);
    }
    note.textContent = text;
    note.hidden = !text;
  }

  showTyping() {
    const names = this.model.get("typing") || [];
    this.typing.textContent = names.length ? `${namesText(names)} ${names.length === 1 ? "is" : "are"} typing…` : "";
  }

  showError() {
    const error = this.model.get("error");
    this.error.textContent = error || "";
    this.error.hidden = !error;
  }

  // -- what the reader has seen: unread divider, read receipts -------------------------------------

  isVisible() {
    return this.visible && document.visibilityState !== "hidden";
  }

  onSight(entries) {
    for (const entry of entries) this.visible = entry.isIntersecting;
    if (!this.isVisible()) this.armed = true;
    else this.scheduleSeen();
  }

  clearUnread() {
    const rec = this.unreadId && this.byId.get(this.unreadId);
    this.unreadId = null;
    if (rec) this.redecorate(rec);
  }

  scheduleSeen() {
    clearTimeout(this.seenTimer);
    this.seenTimer = setTimeout(() => this.reportSeen(), 250);
  }

  reportSeen() {
    if (!this.isVisible() || !this.blocks.length) return;
    const box = this.scroller.getBoundingClientRect();
    const me = this.model.get("user_id");
    for (let b = this.blocks.length - 1; b >= 0; b -= 1) {
      const block = this.blocks[b];
      if (!block.live) continue;
      for (let i = block.recs.length - 1; i >= 0; i -= 1) {
        const rec = block.recs[i];
        const rect = rec.row && rec.row.getBoundingClientRect();
        if (!rect || rect.top >= box.bottom || rect.bottom <= box.top) continue;
        for (let r = rec; r; r = this.prev(r)) { // the newest message of others at or above it
          if (r.m.s !== me && r.m.t !== "system" && !r.m.st) {
            if (r.m.k > this.seenK) {
              this.seenK = r.m.k;
              this.model.send({ op: "seen", id: r.m.id });
            }
            return;
          }
          if (r.m.k <= this.seenK) return;
        }
        return;
      }
    }
  }

  // -- keyboard, edit and delete --------------------------------------------------------------------

  roving(msg, on) {
    for (const button of msg.querySelectorAll(".chatnb-actions button")) button.tabIndex = on ? 0 : -1;
  }

  onKey(e) {
    const editor = e.target.closest(".chatnb-editor");
    if (editor) {
      editor.onKey?.(e);
      return;
    }
    if (e.target.closest("textarea, button, input")) return;
    const rows = [...this.list.querySelectorAll(".chatnb-msg")];
    const at = rows.indexOf(e.target.closest(".chatnb-msg"));
    let go = null;
    if (e.key === "ArrowUp") go = at < 0 ? rows.length - 1 : Math.max(0, at - 1);
    else if (e.key === "ArrowDown") go = at < 0 ? rows.length - 1 : Math.min(rows.length - 1, at + 1);
    else if (e.key === "Home") go = 0;
    else if (e.key === "End") go = rows.length - 1;
    else if (at >= 0 && (e.key === "Enter" || e.key === "Delete")) {
      const rec = this.byId.get(rows[at].dataset.id);
      if (rec && rows[at].querySelector(".chatnb-actions")) {
        e.preventDefault();
        if (e.key === "Enter") this.startEdit(rec);
        else this.confirmDelete(rec);
      }
      return;
    }
    if (go === null || !rows.length) return;
    e.preventDefault();
    rows[go].focus();
    if (go === 0 && e.key !== "End") this.requestOlder();
  }

  startEdit(rec) {
    const bubble = rec.row && rec.row.querySelector(".chatnb-bubble");
    if (!bubble || rec.row.querySelector(".chatnb-editor")) return;
    const box = h("textarea", { class: "chatnb-edit-input", rows: "2", "aria-label": "Edit your message" });
    box.value = rec.m.x ?? bubble.textContent;
    const save = () => {
      const text = box.value;
      if (text.trim() && text !== rec.m.x) this.model.send({ op: "edit", id: rec.m.id, text });
      this.rerender(rec);
    };
    const editor = h("div", { class: "chatnb-editor" }, [box, h("div", { class: "chatnb-editor-buttons" }, [
      h("button", { type: "button", class: "chatnb-save", text: "Save", onclick: save }),
      h("button", { type: "button", class: "chatnb-cancel", text: "Cancel", onclick: () => this.rerender(rec) }),
    ])]);
    editor.onKey = (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); save(); }
      else if (e.key === "Escape") { e.preventDefault(); this.rerender(rec); }
    };
    bubble.replaceWith(editor);
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  confirmDelete(rec) {
    const foot = rec.foot;
    if (!foot || foot.querySelector(".chatnb-confirm")) return;
    const no = h("button", { type: "button", class: "chatnb-cancel", text: "Keep", onclick: () => this.rerender(rec) });
    foot.replaceChildren(h("span", { class: "chatnb-confirm", text: "Delete this message?" }),
      h("button", { type: "button", class: "chatnb-confirm-delete", text: "Delete",
        onclick: () => { this.model.send({ op: "delete", id: rec.m.id }); } }), no);
    foot.hidden = false;
    no.focus();
  }

  // -- helpers --------------------------------------------------------------------------------------

  busy(fn) {
    this.list.setAttribute("aria-busy", "true");
    try { fn(); } finally { this.list.removeAttribute("aria-busy"); }
  }

  later(fn, ms) {
    const id = setTimeout(() => { this.timers.delete(cancel); fn(); }, ms);
    const cancel = () => clearTimeout(id);
    this.timers.add(cancel);
  }
}


// -- MessageComposer ------------------------------------------------------------------------------
// Enter sends, Shift+Enter starts a new line. The text travels with the request to send it, named by a
// local id, so the kernel sends exactly what was in the box, once.

let localCounter = 0;

function composer(model, el) {
  const viewId = Math.random().toString(36).slice(2, 8);
  const box = h("textarea", { class: "chatnb-composer-input", rows: "1", "aria-label": "Message",
    placeholder: model.get("placeholder") });
  const send = h("button", { type: "button", class: "chatnb-composer-send", text: "Send", "aria-label": "Send message",
    disabled: true });
  const status = h("div", { class: "chatnb-composer-status", role: "status" });
  const name = h("input", { type: "text", class: "chatnb-composer-name", "aria-label": "Display name",
    placeholder: "display name" });
  const types = ["text", "html"].map((t) => h("button", { type: "button", "data-type": t, text: t,
    "aria-label": `Send as ${t}`, onclick: () => { model.set("message_type", t); model.save_changes(); } }));
  const options = h("div", { class: "chatnb-composer-options" }, [
    h("label", {}, ["As ", name]), h("span", { class: "chatnb-composer-type", role: "group", "aria-label": "Format" }, types),
  ]);
  const root = h("div", { class: "chatnb-composer-box" }, [options, h("div", { class: "chatnb-composer-row" }, [box, send]), status]);
  el.append(root);
  let lastTyping = 0;

  const grow = () => {
    box.style.height = "auto";
    box.style.height = `${Math.min(box.scrollHeight + 2, 160)}px`;
    send.disabled = !box.value.trim();
  };
  const submit = () => {
    const text = box.value;
    if (!text.trim()) return;
    localCounter += 1;
    model.send({ op: "send", text, local: `local-${viewId}-${localCounter}` });
    box.value = "";
    lastTyping = 0;
    grow();
    box.focus();
  };
  const keys = ownKeys(root, (e) => {
    if (e.target === box && e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      submit();
    }
  });
  box.addEventListener("input", () => {
    grow();
    const interval = model.get("typing_interval") * 1000;
    if (interval > 0 && box.value.trim() && Date.now() - lastTyping >= interval) {
      lastTyping = Date.now();
      model.send({ op: "typing" });
    }
  });
  send.addEventListener("click", submit);
  name.addEventListener("change", () => { model.set("display_name", name.value); model.save_changes(); });

  const sync = () => {
    name.value = model.get("display_name");
    options.hidden = !model.get("show_options");
    for (const b of types) b.setAttribute("aria-pressed", String(b.dataset.type === model.get("message_type")));
    box.placeholder = model.get("placeholder");
    const state = model.get("state") || {};
    status.hidden = !model.get("show_status") && state.state !== "failed";
    status.replaceChildren(h("span", { class: state.state === "failed" ? "chatnb-status-error" : "", text: state.text || "" }));
    if (state.state === "failed" && state.id) {
      status.append(h("button", { type: "button", class: "chatnb-retry", text: "Retry", "aria-label": "Retry sending",
        onclick: () => model.send({ op: "retry", id: state.id }) }));
    }
  };
  for (const trait of ["display_name", "show_options", "message_type", "placeholder", "state", "show_status"]) {
    model.on(`change:${trait}`, sync);
  }
  sync();
  grow();
  return () => {
    keys();
    for (const trait of ["display_name", "show_options", "message_type", "placeholder", "state", "show_status"]) {
      model.off(`change:${trait}`, sync);
    }
  };
}

// -- ParticipantList ------------------------------------------------------------------------------

function participants(model, el) {
  const heading = h("div", { class: "chatnb-heading", role: "heading", "aria-level": "3" });
  const list = h("ul", { class: "chatnb-people-list", "aria-label": "Participants" });
  const input = h("input", { type: "text", class: "chatnb-participant-input", "aria-label": "Add a participant",
    placeholder: model.get("placeholder") });
  const add = h("button", { type: "submit", class: "chatnb-participant-add", text: "Add", "aria-label": "Add participant" });
  const form = h("form", { class: "chatnb-participant-form" }, [input, add]);
  const status = h("div", { class: "chatnb-participants-status", role: "status" });
  const root = h("div", { class: "chatnb-people-box" }, [heading, list, form, status]);
  el.append(root);
  const keys = ownKeys(root);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!input.value.trim()) return;
    model.send({ op: "add", text: input.value });
    input.value = "";
  });
  const draw = () => {
    const people = model.get("people") || [];
    heading.textContent = `Participants (${people.length})`;
    list.replaceChildren(...people.map((p) => {
      const label = p.name || "(no name)";
      return h("li", { class: "chatnb-participant", "data-id": p.id }, [
        h("span", { class: "chatnb-person" }, [
          h("span", { class: "chatnb-person-name", text: p.you ? `${label} (you)` : label }), " ",
          h("span", { class: "chatnb-person-id", title: p.id, text: p.id.slice(-12) }),
        ]),
        h("button", { type: "button", class: "chatnb-participant-remove", text: p.you ? "Leave" : "Remove",
          "aria-label": p.you ? "Leave the thread" : `Remove ${label}`,
          onclick: () => model.send({ op: "remove", id: p.id }) }),
      ]);
    }));
    const s = model.get("status") || {};
    status.className = `chatnb-participants-status${s.kind === "error" ? " chatnb-status-error" : ""}`;
    status.textContent = s.text || "";
  };
  model.on("change:people", draw);
  model.on("change:status", draw);
  draw();
  return () => { keys(); model.off("change:people", draw); model.off("change:status", draw); };
}

// -- EventLog ---------------------------------------------------------------------------------------

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function eventLog(model, el) {
  const body = h("div", { class: "chatnb-events-body", id: `chatnb-events-${Math.random().toString(36).slice(2)}` });
  const toggle = h("button", { type: "button", class: "chatnb-toggle", "aria-expanded": "true", "aria-controls": body.id,
    onclick: () => setOpen(toggle.getAttribute("aria-expanded") !== "true") });
  const filter = h("select", { class: "chatnb-event-filter", "aria-label": "Show events of type" },
    [h("option", { value: "", text: "all events" }), ...model.get("event_names").map((n) => h("option", { value: n, text: n }))]);
  const noisy = h("input", { type: "checkbox", class: "chatnb-event-noisy" });
  const pause = h("button", { type: "button", class: "chatnb-event-pause" });
  const clear = h("button", { type: "button", class: "chatnb-event-clear", text: "Clear", "aria-label": "Clear the event log",
    onclick: () => model.send({ op: "clear" }) });
  const count = h("span", { class: "chatnb-count", role: "status" });
  const tbody = h("tbody");
  const empty = h("div", { class: "chatnb-events-empty", text: "No events yet." });
  const table = h("table", {}, [h("thead", {}, [h("tr", {}, [
    h("th", { class: "chatnb-when", scope: "col", text: "time" }), h("th", { class: "chatnb-kind", scope: "col", text: "event" }),
    h("th", { class: "chatnb-from", scope: "col", text: "from" }), h("th", { scope: "col", text: "details" }),
  ])]), tbody]);
  body.append(h("div", { class: "chatnb-toolbar" }, [filter, h("label", {}, [noisy, "receipts and typing"]), pause, clear, count]),
    h("div", { class: "chatnb-events", tabindex: "0", role: "region", "aria-label": "Events, newest first" }, [empty, table]));
  const root = h("div", { class: "chatnb-events-box" }, [toggle, body]);
  el.append(root);
  const keys = ownKeys(root);

  function setOpen(open) {
    toggle.setAttribute("aria-expanded", String(open));
    body.hidden = !open;
    toggle.textContent = `${open ? "▾" : "▸"} Event log`;
  }
  const rowOf = (r) => h("tr", { class: "chatnb-event-row", "data-kind": r.kind, "data-seq": r.seq }, [
    h("td", { class: "chatnb-when" }, [h("time", { datetime: new Date(r.at).toISOString(), text: clock.format(new Date(r.at)) })]),
    h("td", { class: "chatnb-kind", text: r.kind }), h("td", { class: "chatnb-from", text: r.from }), h("td", { text: r.sum }),
  ]);
  const showEmpty = () => { empty.hidden = tbody.childElementCount > 0; table.hidden = !empty.hidden; };
  const onMsg = (msg) => {
    if (msg.op === "rows") tbody.replaceChildren(...msg.rows.map(rowOf));
    else if (msg.op === "row") {
      tbody.prepend(rowOf(msg.row));
      while (tbody.childElementCount > msg.keep) tbody.lastElementChild.remove();
    }
    showEmpty();
  };
  const sync = () => {
    filter.value = model.get("kind_filter");
    noisy.checked = model.get("show_noisy");
    const paused = model.get("paused");
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    count.textContent = `${model.get("total")} events${paused ? " · paused" : ""}`;
  };
  const set = (name, value) => { model.set(name, value); model.save_changes(); };
  filter.addEventListener("change", () => set("kind_filter", filter.value));
  noisy.addEventListener("change", () => set("show_noisy", noisy.checked));
  pause.addEventListener("click", () => set("paused", !model.get("paused")));
  const traits = ["kind_filter", "show_noisy", "paused", "total"];
  for (const t of traits) model.on(`change:${t}`, sync);
  model.on("msg:custom", onMsg);
  setOpen(true);
  sync();
  showEmpty();
  requestAnimationFrame(() => { const w = root.getBoundingClientRect().width; if (w > 0 && w < 520) setOpen(false); });
  model.send({ op: "hello" });
  return () => { keys(); for (const t of traits) model.off(`change:${t}`, sync); model.off("msg:custom", onMsg); };
}

export default {
  render({ model, el }) {
    const kind = model.get("_kind");
    if (kind === "composer") return composer(model, el);
    if (kind === "participants") return participants(model, el);
    if (kind === "events") return eventLog(model, el);
    const view = new Transcript(model, el);
    return () => view.destroy();
  },
};
