// The xsearch page: the search lives in the URL (/?q=...&like=ID&in=DIR&min_score=S&after=D...),
// results come from /api/search a page at a time, a click opens the viewer. No framework, no
// build.
"use strict";

const PAGE = 60;
// sort=date orders the best k matches by date, so a second page would be another set: by date,
// the page asks once for the API's most.
const BY_DATE = 1000;
// The filters: URL (and API) parameter, and the id of its control.
const FILTERS = [
  ["in", "in"],
  ["min_score", "min-score"],
  ["after", "after"],
  ["before", "before"],
  ["camera", "camera"],
  ["sort", "sort"],
];
const $ = (id) => document.getElementById(id);

// What the results on screen answer: URL parameters, or an uploaded image.
let current = null;
// The search whose page is being fetched: a new search does not wait for an older one's page.
let loading = null;
let exhausted = true;

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(url, options) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) {
    throw new Error("This server needs a token: open this page once as /?token=YOUR_TOKEN.");
  }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// The search the URL describes, or null for none.
function fromUrl() {
  const params = new URLSearchParams(location.search);
  const search = new URLSearchParams();
  for (const name of ["q", "like", ...FILTERS.map(([name]) => name)]) {
    for (const value of params.getAll(name)) if (value.trim()) search.append(name, value);
  }
  return search.has("q") || search.has("like") ? search : null;
}

// The filters of the form, added to `search`.
function withFilters(search) {
  for (const [name, id] of FILTERS) {
    const value = $(id).value.trim();
    search.delete(name);
    // Best match is the default order: the URL says only what differs.
    if (value && !(name === "sort" && value === "score")) search.set(name, value);
  }
  return search;
}

function go(search) {
  history.pushState(null, "", "/?" + search.toString());
  run({ params: search });
}

function run(what) {
  current = what;
  exhausted = false;
  $("results").replaceChildren();
  $("summary").textContent = "";
  showError("");
  loadMore();
}

async function loadMore() {
  if (!current || loading === current || exhausted) return;
  const asked = current;
  loading = asked;
  const offset = $("results").children.length;
  const params = new URLSearchParams(asked.params);
  const byDate = params.get("sort") === "date";
  const page = byDate ? BY_DATE : PAGE;
  params.set("k", page);
  params.set("offset", offset);
  $("more").hidden = false;
  try {
    const body = asked.image
      ? await api("/api/search?" + params, {
          method: "POST",
          headers: { "Content-Type": asked.image.type || "application/octet-stream" },
          body: asked.image,
        })
      : await api("/api/search?" + params);
    if (asked !== current) return;
    for (const hit of body.results) $("results").append(result(hit));
    exhausted = byDate || body.results.length < page;
    const count = $("results").children.length;
    $("summary").textContent = count === 0 ? "Nothing found." : `${count} result${count === 1 ? "" : "s"}`;
  } catch (err) {
    if (asked === current) {
      showError(err.message);
      exhausted = true;
    }
  } finally {
    if (loading === asked) {
      loading = null;
      $("more").hidden = exhausted;
    }
  }
  // The observer fires on changes only: a sentinel still in view after a page asks again.
  if (!exhausted && asked === current && $("more").getBoundingClientRect().top < innerHeight + 600) {
    setTimeout(loadMore, 0);
  }
}

function result(hit) {
  const link = document.createElement("a");
  link.className = "result";
  link.href = hit.image;
  link.dataset.id = hit.id;
  link.title = hit.path;
  const img = document.createElement("img");
  img.src = hit.thumbnail;
  img.alt = hit.path.split("/").pop();
  img.loading = "lazy";
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = hit.score.toFixed(4);
  link.append(img, score);
  if (hit.taken) {
    // The day and time as the photo's own clock read it: "2021-07-14 18:03".
    const taken = document.createElement("time");
    taken.className = "taken";
    taken.dateTime = hit.taken;
    taken.textContent = hit.taken.slice(0, 16).replace("T", " ");
    link.append(taken);
  }
  link.addEventListener("click", (event) => {
    event.preventDefault();
    openViewer(hit);
  });
  return link;
}

async function openViewer(hit) {
  const viewer = $("viewer");
  const image = $("viewer-image");
  // Browsers show JPEG, PNG, WebP and GIF originals; for the rest, the thumbnail.
  image.onerror = () => {
    image.onerror = null;
    image.src = hit.thumbnail;
  };
  image.src = hit.image;
  image.alt = hit.path;
  $("viewer-path").textContent = hit.path;
  $("viewer-original").href = hit.image;
  viewer.dataset.id = hit.id;
  const texts = $("viewer-texts");
  texts.replaceChildren();
  if (!viewer.open) viewer.showModal();
  try {
    const body = await api(`/api/texts?like=${encodeURIComponent(hit.id)}&k=5`);
    if (viewer.dataset.id !== hit.id) return;
    for (const t of body.results) {
      const item = document.createElement("li");
      item.textContent = `${t.text} (${t.score.toFixed(4)})`;
      texts.append(item);
    }
    if (body.results.length === 0) {
      const item = document.createElement("li");
      item.textContent = "No texts yet: add some with `xsearch texts add`.";
      texts.append(item);
    }
  } catch (err) {
    showError(err.message);
  }
}

// The watcher's state (`xsearch serve --watch`) in words.
function indexingText(indexing) {
  if (!indexing) return "Not watching folders: run xsearch index to add photos.";
  const roots = indexing.roots.join(", ");
  if (indexing.busy) return `Watching ${roots}: indexing, ${indexing.done} of ${indexing.pending} files done.`;
  const last = indexing.last;
  if (!last) return `Watching ${roots}: starting.`;
  return `Watching ${roots}: up to date. Last pass (${last.pass}, ${last.seconds.toFixed(2)} s): ` +
    `${last.added} added, ${last.updated} updated, ${last.removed} removed, ${last.failed} failed.`;
}

async function showStatus() {
  const view = $("status");
  view.hidden = false;
  try {
    const status = await api("/api/status");
    const counts = $("status-counts");
    counts.replaceChildren();
    for (const [name, value] of [
      ["Images", status.images],
      ["Texts", status.texts],
      ["Failures", status.failures_total],
      ["Model", status.model || status.fingerprint],
      ["Index", status.index],
    ]) {
      const term = document.createElement("dt");
      term.textContent = name;
      const detail = document.createElement("dd");
      detail.textContent = value;
      counts.append(term, detail);
    }
    $("status-indexing").textContent = indexingText(status.indexing);
    const failures = $("status-failures");
    failures.replaceChildren();
    for (const f of status.failures) {
      const item = document.createElement("li");
      item.textContent = `${f.path}: ${f.reason}`;
      failures.append(item);
    }
  } catch (err) {
    showError(err.message);
  }
}

// The duplicate groups, each a row of thumbnails, the suggested keeper marked `.keep`.
async function showDupes() {
  const view = $("dupes");
  view.hidden = false;
  $("dupes-summary").textContent = "Looking for duplicates...";
  const list = $("dupes-groups");
  list.replaceChildren();
  try {
    const body = await api("/api/dupes");
    for (const group of body.groups) {
      const row = document.createElement("div");
      row.className = "dupe-group";
      row.dataset.kind = group.kind;
      const label = document.createElement("p");
      label.textContent = `${group.kind === "exact" ? "Identical files" : "Near duplicates"} ` +
        `(similarity ${group.score.toFixed(4)})`;
      row.append(label);
      for (const image of group.images) {
        const link = document.createElement("a");
        link.href = `/api/image/${encodeURIComponent(image.id)}`;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        link.dataset.id = image.id;
        link.title = image.id === group.keep ? `${image.path} (suggested keeper)` : image.path;
        if (image.id === group.keep) link.className = "keep";
        const img = document.createElement("img");
        img.src = image.thumbnail;
        img.alt = image.path.split("/").pop();
        img.loading = "lazy";
        link.append(img);
        row.append(link);
      }
      list.append(row);
    }
    const n = body.groups.length;
    $("dupes-summary").textContent = n === 0
      ? "No duplicates found."
      : `${n} group${n === 1 ? "" : "s"}; the suggested keeper of each is outlined.`;
  } catch (err) {
    $("dupes-summary").textContent = "";
    showError(err.message);
  }
}

function searchWithImage(file) {
  if (!file) return;
  run({ params: withFilters(new URLSearchParams()), image: file });
}

function start() {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("q").value.trim();
    if (!q) return;
    go(withFilters(new URLSearchParams({ q })));
  });
  for (const [, id] of FILTERS) {
    $(id).addEventListener("change", () => {
      if (current && current.image) run({ ...current, params: withFilters(new URLSearchParams()) });
      else if (current) go(withFilters(new URLSearchParams(current.params)));
    });
  }
  $("more-like-this").addEventListener("click", () => {
    const id = $("viewer").dataset.id;
    $("viewer").close();
    go(withFilters(new URLSearchParams({ like: id })));
  });
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  $("upload").addEventListener("change", (event) => searchWithImage(event.target.files[0]));
  $("status-link").addEventListener("click", (event) => {
    event.preventDefault();
    showStatus();
  });
  $("status-close").addEventListener("click", () => ($("status").hidden = true));
  $("dupes-link").addEventListener("click", (event) => {
    event.preventDefault();
    showDupes();
  });
  $("dupes-close").addEventListener("click", () => ($("dupes").hidden = true));

  let drags = 0;
  document.addEventListener("dragenter", (event) => {
    event.preventDefault();
    drags += 1;
    $("drop").hidden = false;
  });
  document.addEventListener("dragleave", () => {
    drags = Math.max(0, drags - 1);
    if (drags === 0) $("drop").hidden = true;
  });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    drags = 0;
    $("drop").hidden = true;
    searchWithImage(event.dataTransfer.files[0]);
  });

  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      $("q").focus();
    }
  });

  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: "600px" }).observe($("more"));

  const load = () => {
    const search = fromUrl();
    $("q").value = search ? search.get("q") || "" : "";
    for (const [name, id] of FILTERS) {
      $(id).value = (search && search.get(name)) || (name === "sort" ? "score" : "");
    }
    if (search) run({ params: search });
  };
  window.addEventListener("popstate", load);
  load();
  if (location.hash === "#status") showStatus();
  if (location.hash === "#dupes") showDupes();
}

start();
