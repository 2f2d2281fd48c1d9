// Progressive enhancement for the registry's pages. Everything works without it; with it,
// copy buttons copy, destructive forms ask first, and the who-can form shows one subject kind.
// Loaded as a file: the Content-Security-Policy allows no inline script.
'use strict';

function copyText(text, input) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  // Plain http on a non-local host has no Clipboard API: select the field and copy that.
  input.focus();
  input.select();
  return document.execCommand('copy') ? Promise.resolve() : Promise.reject(new Error('copy refused'));
}

document.addEventListener('click', function (event) {
  var button = event.target.closest('button[data-copy-target]');
  if (!button) return;
  event.preventDefault();
  var input = document.getElementById(button.getAttribute('data-copy-target'));
  if (!input) return;
  copyText(input.value, input).then(
    function () {
      flash(button, 'Copied');
    },
    function () {
      input.select();
      flash(button, 'Press Ctrl+C');
    },
  );
});

function flash(button, text) {
  var before = button.getAttribute('data-label') || button.textContent;
  button.setAttribute('data-label', before);
  button.textContent = text;
  button.setAttribute('data-copied', 'true');
  setTimeout(function () {
    button.textContent = before;
    button.removeAttribute('data-copied');
  }, 1500);
}

document.addEventListener('submit', function (event) {
  var form = event.target;
  var question = form.getAttribute('data-confirm');
  if (question && !window.confirm(question)) event.preventDefault();
});

// Who can do what: show only the inputs of the chosen subject (groups or a signed-in user).
function syncSubject() {
  var chosen = document.querySelector('input[name=subject]:checked');
  if (!chosen) return;
  document.querySelectorAll('[data-subject]').forEach(function (el) {
    el.hidden = el.getAttribute('data-subject') !== chosen.value;
  });
}
document.addEventListener('change', function (event) {
  if (event.target.matches && event.target.matches('input[name=subject]')) syncSubject();
});
document.addEventListener('DOMContentLoaded', syncSubject);

// The servers table keeps its health column current: every 20 s while the page is visible, and
// at once when it becomes visible again, it asks the REST API (same session) and redraws each
// row's cell the way the server renders it. Text only: nothing from the API becomes markup.
function healthCell(cell, h) {
  var status = document.createElement('span');
  status.className = 'health';
  status.setAttribute('data-health', h.status);
  var dot = document.createElement('span');
  dot.className = 'dot ' + h.status;
  dot.setAttribute('aria-hidden', 'true');
  status.appendChild(dot);
  var text = h.status === 'unknown' ? 'not checked yet' : h.status;
  if (h.status === 'healthy' && typeof h.latencyMs === 'number') text += ' \u00b7 ' + h.latencyMs + ' ms';
  status.appendChild(document.createTextNode(text));
  var parts = [status];
  if (h.checkedAt) {
    var when = document.createElement('div');
    when.className = 'muted small-text';
    var time = document.createElement('time');
    time.setAttribute('datetime', h.checkedAt);
    time.title = h.checkedAt;
    time.textContent = 'checked ' + h.checkedAt.slice(11, 19) + ' UTC';
    when.appendChild(time);
    parts.push(when);
  }
  if (h.error) {
    var error = document.createElement('div');
    error.className = 'health-error';
    error.setAttribute('data-health-error', '');
    error.textContent = h.error;
    parts.push(error);
  }
  cell.replaceChildren.apply(cell, parts);
}

function refreshHealth() {
  var table = document.querySelector('table[data-live-health]');
  if (!table || document.visibilityState === 'hidden') return;
  fetch(table.getAttribute('data-live-health'), { credentials: 'same-origin', headers: { accept: 'application/json' } })
    .then(function (res) {
      return res.ok ? res.json() : null;
    })
    .then(function (body) {
      if (!body || !Array.isArray(body.servers)) return;
      body.servers.forEach(function (s) {
        var row = table.querySelector('tr[data-server="' + CSS.escape(s.name) + '"]');
        var cell = row && row.querySelector('td[data-health-cell]');
        if (cell && s.health) healthCell(cell, s.health);
      });
      table.setAttribute('data-health-refreshed', new Date().toISOString());
    })
    .catch(function () {
      /* offline or signed out: keep what is shown */
    });
}
if (document.querySelector) {
  setInterval(refreshHealth, 20000);
  document.addEventListener('visibilitychange', refreshHealth);
  window.addEventListener('focus', refreshHealth);
}
