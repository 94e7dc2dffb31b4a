// mailoauth console: the device-code panel (code, link, countdown, then the account's new state,
// without a reload). Everything works without it; this only saves reloads.
(function () {
  'use strict';
  var csrfMeta = document.querySelector('meta[name="csrf"]');
  var csrf = csrfMeta ? csrfMeta.content : '';
  var live = document.getElementById('live');
  function say(text) { if (live) { live.textContent = text; } }
  function mmss(s) { var m = Math.floor(s / 60), r = s % 60; return m + ':' + (r < 10 ? '0' : '') + r; }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  // A countdown ticks down every element with data-seconds.
  setInterval(function () {
    document.querySelectorAll('[data-seconds]').forEach(function (e) {
      var s = Math.max(0, parseInt(e.getAttribute('data-seconds'), 10) - 1);
      e.setAttribute('data-seconds', String(s));
      e.textContent = s > 0 ? mmss(s) : 'expired';
    });
  }, 1000);

  function problemBox(st) {
    var box = el('div', { 'class': 'problem', role: 'alert' });
    if (st.problem) {
      var p = el('p');
      p.appendChild(el('strong', { 'class': 'code' }, st.problem.code));
      p.appendChild(document.createTextNode(' ' + st.problem.cause));
      box.appendChild(p);
      box.appendChild(el('p', { 'class': 'fix' }, 'Fix: ' + st.problem.fix));
    } else {
      box.appendChild(el('p', {}, st.error || 'The sign-in failed.'));
    }
    return box;
  }

  function showCode(panel, st) {
    panel.hidden = false;
    panel.textContent = '';
    var p = el('p', {}, 'On any device, open ');
    p.appendChild(el('a', { href: st.verification_uri, target: '_blank', rel: 'noreferrer' }, st.verification_uri));
    p.appendChild(document.createTextNode(' and enter the code'));
    panel.appendChild(p);
    panel.appendChild(el('p', { 'class': 'usercode' }, st.user_code));
    var left = el('p', {}, 'It expires in ');
    left.appendChild(el('span', { 'class': 'countdown', 'data-seconds': String(st.expires_in || 0) }, mmss(st.expires_in || 0)));
    left.appendChild(document.createTextNode('. This page updates by itself.'));
    panel.appendChild(left);
    say('Code ' + st.user_code.split('').join(' ') + ' for ' + st.account + '.');
  }

  function refreshCard(name) {
    return fetch('/accounts/' + encodeURIComponent(name) + '/card', { credentials: 'same-origin' })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var card = document.getElementById('account-' + name);
        var t = document.createElement('template');
        t.innerHTML = html.trim();
        var fresh = t.content.firstElementChild;
        if (!card || !fresh) { return; }
        // The focused button goes with the old card: a keyboard user keeps their place on its heading.
        var hadFocus = card.contains(document.activeElement);
        card.replaceWith(fresh);
        var h = fresh.querySelector('h2');
        if (hadFocus && h) { h.setAttribute('tabindex', '-1'); h.focus(); }
      });
  }

  function poll(id, onState) {
    fetch('/signins/' + encodeURIComponent(id) + '/status', { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) { return r.json(); })
      .then(function (st) {
        if (st.state === 'waiting') { setTimeout(function () { poll(id, onState); }, 2000); return; }
        onState(st);
      })
      .catch(function () { setTimeout(function () { poll(id, onState); }, 5000); });
  }

  function finished(st, panel) {
    if (st.state === 'done') {
      say(st.account + ' is signed in as ' + st.user + '.');
      refreshCard(st.account).catch(function () { location.reload(); });
      return;
    }
    if (panel) { panel.hidden = false; panel.textContent = ''; panel.appendChild(problemBox(st)); }
    say('The sign-in of ' + st.account + ' failed.');
  }

  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!form.matches || !form.matches('form[data-signin="device"]')) { return; }
    ev.preventDefault();
    var card = form.closest('.card');
    var panel = card.querySelector('.signin-panel');
    var button = form.querySelector('button');
    button.disabled = true;
    fetch(form.action, {
      method: 'POST', credentials: 'same-origin',
      headers: { Accept: 'application/json', 'X-CSRF-Token': csrf },
      body: new URLSearchParams(new FormData(form))
    }).then(function (r) { return r.json(); }).then(function (st) {
      if (st.error && !st.id) { throw new Error(st.error); }
      if (st.state !== 'waiting') { finished(st, panel); return; }
      showCode(panel, st);
      poll(st.id, function (end) { finished(end, panel); });
    }).catch(function (e) {
      button.disabled = false;
      panel.hidden = false;
      panel.textContent = '';
      panel.appendChild(problemBox({ error: String(e.message || e) }));
    });
  });

  // The sign-in page without the panel (no script when it was opened): follow it the same way.
  var page = document.querySelector('[data-signin-id]');
  if (page && page.querySelector('.usercode')) {
    poll(page.getAttribute('data-signin-id'), function () { location.reload(); });
  }
}());
