// The live order page (GET /live). Plain browser JavaScript, no framework.
//
// Connect: open the live-update WebSocket with the subprotocols ["bearer", key], and once it is
// open list the client's orders (GET orders, same origin, `Authorization: Bearer`): everything
// before the list's read is in the list, everything after the socket opened arrives on it.
// Updates that arrive while the list loads only refresh their order (GET orders/{id}), since
// the list may already be newer. Afterwards each update sets its row's status in place (a new
// order is fetched and put at the top; a fill refetches the filled quantity) and is appended
// to the log. A closed socket is reopened with ?after=<last event id> after a growing pause,
// so nothing is missed; close code 4401 means the key was revoked: the page says so and stops.
//
// The key is kept in this script's memory only. For automation it may come in the fragment,
// /live#key=<key> (never sent to a server); it is removed from the address bar at once.
"use strict";

(() => {
  const updatesUrl = document.querySelector('meta[name="updates-url"]').content.trim();
  const form = document.getElementById("connect-form");
  const keyInput = document.getElementById("api-key");
  const disconnectButton = document.getElementById("disconnect");
  const connection = document.getElementById("connection");
  const tbody = document.getElementById("orders-body");
  const log = document.getElementById("log");

  const CLOSE_KEY_REVOKED = 4401;
  const LOG_ENTRIES = 200;
  const FILL_STATUSES = new Set(["partially_filled", "filled"]);

  let key = null;
  // Bumped by each Connect and Disconnect: callbacks of an older connection do nothing.
  let generation = 0;
  let socket = null;
  let reconnectTimer = null;
  let failures = 0;
  let lastEventId = null;
  // Updates that arrived while the order list was loading (null: no list is loading).
  let pending = null;
  // Whether the list of this connection's key has been shown.
  let listed = false;
  const rows = new Map();
  // Order id -> whether another refresh is wanted once the running one ends.
  const refreshing = new Map();

  function setState(state, text) {
    document.body.dataset.state = state;
    connection.textContent = text;
  }

  function api(path) {
    return fetch(path, {
      headers: { Authorization: "Bearer " + key, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  }

  function cell(row, className, text) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  // Puts an order (as the API returns it) into its row; a new row goes to the top unless
  // `append` (the initial list, already newest first).
  function upsertRow(order, append) {
    let row = rows.get(order.id);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.orderId = order.id;
      cell(row, "order-id", order.id);
      for (const className of ["instrument", "side", "number quantity", "status", "number filled"]) {
        cell(row, className, "");
      }
      rows.set(order.id, row);
      if (append) tbody.appendChild(row);
      else tbody.prepend(row);
    }
    row.querySelector(".instrument").textContent = order.instrument;
    row.querySelector(".side").textContent = order.side;
    row.querySelector(".quantity").textContent = String(order.quantity);
    row.querySelector(".filled").textContent = String(order.filled_quantity);
    setStatus(row, order.status);
  }

  function setStatus(row, status) {
    if (row.dataset.status === status) return;
    row.dataset.status = status;
    row.querySelector(".status").textContent = status;
    row.classList.add("changed");
    setTimeout(() => row.classList.remove("changed"), 1500);
  }

  // Refetches one order; one request at a time per order, repeated while updates came in.
  async function refresh(id, gen) {
    if (refreshing.has(id)) {
      refreshing.set(id, true);
      return;
    }
    try {
      do {
        refreshing.set(id, false);
        const response = await api("orders/" + encodeURIComponent(id));
        if (gen !== generation) return;
        if (response.ok) upsertRow(await response.json(), false);
      } while (refreshing.get(id) && gen === generation);
    } catch (error) {
      // The next update of this order tries again.
    } finally {
      if (gen === generation) refreshing.delete(id);
    }
  }

  function appendLog(update) {
    const entry = document.createElement("li");
    const from = update.from === null ? "new" : update.from;
    entry.textContent =
      `#${update.event_id} ${update.at} ${update.order_id}: ${from} → ${update.status}` +
      (update.reason ? ` (${update.reason})` : "");
    log.appendChild(entry);
    while (log.children.length > LOG_ENTRIES) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  function onUpdate(update, gen) {
    if (update.type !== "order_update") return;
    lastEventId = update.event_id;
    appendLog(update);
    if (pending !== null) {
      pending.push(update);
      return;
    }
    apply(update, gen);
  }

  function apply(update, gen) {
    const row = rows.get(update.order_id);
    if (row) setStatus(row, update.status);
    if (!row || FILL_STATUSES.has(update.status) || refreshing.has(update.order_id)) {
      refresh(update.order_id, gen);
    }
  }

  // Lists the client's orders (newest first; rows already shown are updated in place), then
  // refreshes the orders that updates named meanwhile. False if it failed (said on the page).
  async function loadOrders(gen) {
    pending = [];
    try {
      const response = await api("orders?limit=100");
      if (gen !== generation) return false;
      if (response.status === 401) {
        refuse();
        return false;
      }
      if (!response.ok) throw new Error(`GET /orders answered ${response.status}`);
      const list = await response.json();
      if (gen !== generation) return false;
      for (const order of list.orders) upsertRow(order, true);
      listed = true;
      return true;
    } catch (error) {
      if (gen === generation) {
        setState("error", `Could not list your orders (${error.message}); trying again in 5 s.`);
      }
      return false;
    } finally {
      if (gen === generation && pending !== null) {
        const arrived = pending;
        pending = null;
        for (const update of arrived) refresh(update.order_id, gen);
      }
    }
  }

  // Lists the orders, then says the page is live; tries again every 5 s until it can.
  async function listThenLive(gen) {
    if (!(await loadOrders(gen))) {
      setTimeout(() => {
        if (gen === generation && !listed && pending === null) listThenLive(gen);
      }, 5000);
      return;
    }
    if (!updatesUrl) {
      setState("unconfigured", "Live updates are not configured on this server: your orders as of now.");
    } else if (socket !== null && socket.readyState === WebSocket.OPEN) {
      setState("live", "Connected: updates appear as they happen.");
    }
  }

  function refuse() {
    stop();
    setState("refused", "The API key was not accepted (unknown, malformed or revoked).");
  }

  function openSocket(gen) {
    const resuming = lastEventId !== null;
    const url = resuming ? `${updatesUrl}?after=${lastEventId}` : updatesUrl;
    let ws;
    try {
      ws = new WebSocket(url, ["bearer", key]);
    } catch (error) {
      setState("error", `Cannot open the live-update connection: ${error.message}`);
      return;
    }
    socket = ws;
    let opened = false;
    ws.onopen = async () => {
      if (gen !== generation) return;
      opened = true;
      failures = 0;
      // How many times this page connected (for a look in the DOM, and the browser test).
      document.body.dataset.connections = String(Number(document.body.dataset.connections || 0) + 1);
      if (!resuming) {
        // Without a last event id nothing can be resumed: the list is read again instead.
        rows.clear();
        tbody.replaceChildren();
        listed = false;
      }
      if (!listed) {
        if (pending === null) listThenLive(gen);
        return;
      }
      setState("live", "Connected: updates appear as they happen.");
    };
    ws.onmessage = (event) => {
      if (gen !== generation) return;
      let update;
      try {
        update = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      onUpdate(update, gen);
    };
    ws.onclose = async (event) => {
      if (gen !== generation) return;
      socket = null;
      if (event.code === CLOSE_KEY_REVOKED) {
        stop();
        setState("revoked", "This API key was revoked: live updates stopped.");
        return;
      }
      if (!opened) {
        // A refused upgrade shows only as a close (1006): ask the API whether the key is good.
        try {
          const response = await api("orders?limit=1");
          if (gen !== generation) return;
          if (response.status === 401) {
            refuse();
            return;
          }
        } catch (error) {
          // The service is unreachable: keep trying.
        }
      }
      scheduleReconnect(gen);
    };
  }

  function scheduleReconnect(gen) {
    failures += 1;
    // 1 s, 2 s, 4 s … at most 30 s, with some jitter so that many pages do not return at once.
    const pause = Math.min(30000, 1000 * 2 ** (failures - 1)) * (0.75 + Math.random() / 2);
    setState("reconnecting", `Connection lost; reconnecting in ${Math.round(pause / 1000)} s…`);
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      if (gen === generation) openSocket(gen);
    }, pause);
  }

  function stop() {
    generation += 1;
    if (reconnectTimer !== null) clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (socket !== null) socket.close(1000, "page disconnected");
    socket = null;
    pending = null;
    refreshing.clear();
    disconnectButton.disabled = true;
  }

  function connect(newKey) {
    stop();
    key = newKey;
    failures = 0;
    lastEventId = null;
    listed = false;
    rows.clear();
    tbody.replaceChildren();
    log.replaceChildren();
    disconnectButton.disabled = false;
    const gen = generation;
    if (!updatesUrl) {
      setState("connecting", "Loading your orders…");
      listThenLive(gen);
      return;
    }
    setState("connecting", "Connecting…");
    openSocket(gen);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const entered = keyInput.value.trim();
    keyInput.value = "";
    if (entered) connect(entered);
  });
  disconnectButton.addEventListener("click", () => {
    stop();
    key = null;
    setState("idle", "Disconnected.");
  });

  // /live#key=<key>: for automation (on load, or a fragment set later). The fragment is never
  // sent to a server; drop it from the address bar (and the history) before anything else.
  function keyFromFragment() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (!fragment.has("key")) return;
    history.replaceState(null, "", location.pathname + location.search);
    const fromFragment = fragment.get("key").trim();
    if (fromFragment) connect(fromFragment);
  }
  window.addEventListener("hashchange", keyFromFragment);
  keyFromFragment();
})();
