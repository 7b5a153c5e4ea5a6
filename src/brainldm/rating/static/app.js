// brainldm rating page: login, trials, breaks. Talks to the JSON API of brainldm.rating.
"use strict";

const TOKEN_KEY = "brainldm-rate-token";
const RETRY_MS = 2000;
const state = {
  token: null, trial: null, shownAt: 0, busy: false,
  nDone: 0, nTotal: 0, breakEvery: 0,
};
const $ = (id) => document.getElementById(id);

function show(screen) {
  for (const section of document.querySelectorAll("section[data-screen]")) {
    section.hidden = section.dataset.screen !== screen;
  }
  document.body.dataset.screen = screen;
}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers["X-Rater-Token"] = state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    return { status: 0, data: {} };  // server unreachable
  }
  let data = {};
  try { data = await response.json(); } catch (err) { /* not JSON */ }
  return { status: response.status, data };
}

function setProgress(data) {
  if (typeof data.n_done === "number") state.nDone = data.n_done;
  if (typeof data.n_total === "number") state.nTotal = data.n_total;
  if (typeof data.break_every === "number") state.breakEvery = data.break_every;
  if (data.rater) $("who").textContent = data.rater;
  $("progress-text").textContent = `${state.nDone} / ${state.nTotal}`;
  $("progress").max = Math.max(state.nTotal, 1);
  $("progress").value = state.nDone;
  $("logout").hidden = !state.token;
  document.body.dataset.nDone = String(state.nDone);
}

function fail(response) {
  $("error-text").textContent = response.data.error || `The server answered ${response.status}.`;
  show("error");
}

function offline(retry) {
  show("offline");
  setTimeout(retry, RETRY_MS);
}

function logout() {
  localStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.trial = null;
  $("who").textContent = "";
  setProgress({ n_done: 0, n_total: 0 });
  show("login");
}

function showInstructions() {
  $("break-note").textContent = state.breakEvery > 0
    ? `There is a break every ${state.breakEvery} answers.` : "";
  show(state.nDone >= state.nTotal && state.nTotal > 0 ? "done" : "instructions");
}

async function resume() {
  const response = await api("GET", "/api/me");
  if (response.status === 0) return offline(resume);
  if (response.status !== 200) return logout();
  setProgress(response.data);
  showInstructions();
}

function loadImage(img, src) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = () => reject(new Error(`could not load ${img.alt}`));
    img.src = src;
  });
}

async function nextTrial() {
  state.trial = null;
  document.body.dataset.ready = "0";
  for (const fig of document.querySelectorAll(".candidate")) fig.classList.remove("chosen");
  const response = await api("POST", "/api/next");
  if (response.status === 0) return offline(nextTrial);
  if (response.status === 401) return logout();
  if (response.status !== 200) return fail(response);
  setProgress(response.data);
  if (response.data.done) return show("done");
  show("trial");
  const images = response.data.images;
  try {
    await Promise.all(["recon", "left", "right"].map((w) => loadImage($(`img-${w}`), images[w])));
  } catch (err) {
    return offline(nextTrial);
  }
  // Reveal the three images together; the response time starts at the next paint.
  state.trial = response.data.trial;
  document.body.dataset.trial = state.trial;
  document.body.dataset.ready = "1";
  requestAnimationFrame(() => { state.shownAt = performance.now(); });
}

async function answer(choice) {
  if (!state.trial || state.busy || document.body.dataset.ready !== "1") return;
  state.busy = true;
  document.body.dataset.ready = "0";
  const body = {
    trial: state.trial, choice,
    response_time_ms: Math.round((performance.now() - state.shownAt) * 10) / 10,
  };
  document.querySelector(`.candidate[data-choice="${choice}"]`).classList.add("chosen");
  const submit = async () => {
    const response = await api("POST", "/api/answer", body);
    if (response.status === 0) return offline(submit);
    state.busy = false;
    if (response.status === 401) return logout();
    if (response.status === 409) return nextTrial();  // saved already (a retried request)
    if (response.status !== 200) return fail(response);
    setProgress(response.data);
    const due = state.breakEvery > 0 && state.nDone % state.breakEvery === 0;
    if (due && state.nDone < state.nTotal) {
      $("break-text").textContent = `${state.nDone} of ${state.nTotal} done. Rest your eyes, then continue.`;
      return show("break");
    }
    return nextTrial();
  };
  return submit();
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const body = { name: $("name").value.trim(), code: $("code").value.trim() };
  const response = await api("POST", "/api/login", body);
  if (response.status === 0) {
    $("login-error").textContent = "The rating server does not answer.";
    return;
  }
  if (response.status !== 200 && response.status !== 201) {
    $("login-error").textContent = response.data.error || `The server answered ${response.status}.`;
    return;
  }
  state.token = response.data.token;
  localStorage.setItem(TOKEN_KEY, state.token);
  if (response.data.new) {
    $("welcome-name").textContent = response.data.rater;
    $("resume-code").textContent = state.token.match(/.{1,5}/g).join("-");
    show("code");
  } else {
    await resume();
  }
}

function proceed() {
  const screen = document.body.dataset.screen;
  if (screen === "code") return resume();
  if (screen === "instructions" || screen === "break") return nextTrial();
  return undefined;
}

document.addEventListener("keydown", (event) => {
  if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  const screen = document.body.dataset.screen;
  if (screen === "trial") {
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const choice = { f: "left", ArrowLeft: "left", j: "right", ArrowRight: "right" }[key];
    if (choice) { event.preventDefault(); answer(choice); }
  } else if (["code", "instructions", "break"].includes(screen)
             && (event.key === " " || event.key === "Enter")) {
    event.preventDefault();
    proceed();
  }
});

function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("reload").addEventListener("click", () => location.reload());
  for (const button of document.querySelectorAll("button.continue")) {
    button.addEventListener("click", proceed);
  }
  for (const fig of document.querySelectorAll(".candidate")) {
    fig.addEventListener("click", () => answer(fig.dataset.choice));
  }
  // A rater link carries the token in the fragment, which never reaches the server.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    localStorage.setItem(TOKEN_KEY, fragment.get("token"));
    history.replaceState(null, "", location.pathname);
  }
  state.token = localStorage.getItem(TOKEN_KEY);
  if (state.token) return resume();
  return show("login");
}

start();
