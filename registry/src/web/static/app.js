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
    function () { flash(button, 'Copied'); },
    function () { input.select(); flash(button, 'Press Ctrl+C'); },
  );
});

function flash(button, text) {
  var before = button.getAttribute('data-label') || button.textContent;
  button.setAttribute('data-label', before);
  button.textContent = text;
  button.setAttribute('data-copied', 'true');
  setTimeout(function () { button.textContent = before; button.removeAttribute('data-copied'); }, 1500);
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
