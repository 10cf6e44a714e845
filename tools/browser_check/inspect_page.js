// Run by tools/browser_check.py (execute_script, arguments[0] = SLACK_PX): returns
// JSON {tex, images, imageUrls, wide, links} describing the current page.
const SLACK = arguments[0];
const column = document.querySelector('article.bd-article') || document.querySelector('main')
  || document.body || document.documentElement;
const colRect = column.getBoundingClientRect();

function describe(el) {
  let s = el.tagName.toLowerCase();
  if (el.id) s += '#' + el.id;
  const cls = (typeof el.className === 'string' ? el.className : '').trim().split(/\s+/)
    .filter(c => c).slice(0, 3);
  if (cls.length) s += '.' + cls.join('.');
  const section = el.closest('section[id]');
  if (section) s += ' in section #' + section.id;
  // Array.from: slice whole characters, not UTF-16 halves of a maths letter
  const raw = (el.innerText || el.getAttribute('alt') || '').replace(/\s+/g, ' ').trim();
  const text = Array.from(raw);
  if (text.length) s += ' "' + text.slice(0, 60).join('') + (text.length > 60 ? '...' : '') + '"';
  return s;
}

function visible(el) {
  const st = getComputedStyle(el);
  return st.display !== 'none' && st.visibility !== 'hidden' && el.getClientRects().length > 0;
}

// 1. Math: every .math element rendered by MathJax, no MathJax error, no raw TeX in the text.
const tex = [];
for (const el of column.querySelectorAll('.math')) {
  if (!el.querySelector('mjx-container') && !el.closest('mjx-container')) {
    tex.push('math not typeset: ' + describe(el));
  }
}
for (const el of column.querySelectorAll('mjx-merror, [data-mjx-error]')) {
  tex.push('MathJax error ' + (el.getAttribute('data-mjx-error') || '') + ': ' + describe(el));
}
// The visible prose: code, outputs printed as text, and rendered math are skipped.
const SKIP = 'pre, code, script, style, textarea, mjx-container, .math, .highlight, .MathJax';
const walker = document.createTreeWalker(column, NodeFilter.SHOW_TEXT, {
  acceptNode(node) {
    const parent = node.parentElement;
    if (!parent || parent.closest(SKIP) || !visible(parent)) return NodeFilter.FILTER_REJECT;
    return NodeFilter.FILTER_ACCEPT;
  }
});
const RAW = [
  /\$\$[^$]+\$\$/, /\\\(.+?\\\)/, /\\\[.+?\\\]/, /\\begin\{/,
  /\$[^$\s][^$\n]*?(\\[a-zA-Z]+|[_^{}])[^$\n]*?\$/,
];
let prose = '';
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  prose += node.textContent + ' ';
}
prose = prose.replace(/\s+/g, ' ');
for (const re of RAW) {
  const m = prose.match(re);
  if (m) {
    const start = Math.max(0, m.index - 30);
    tex.push('raw TeX in the text: "...' + prose.slice(start, m.index + m[0].length + 30)
      + '..."');
  }
}

// 2. Images that did not load.
const images = [];
const imageUrls = [];
for (const img of document.images) {
  if (!img.complete || img.naturalWidth === 0) {
    images.push((img.getAttribute('src') || '').slice(0, 100) + ' (' + describe(img) + ')');
    imageUrls.push(img.src);
  }
}

// 3. Elements of the content column that are too wide for it.
const wide = [];
const seen = new Set();
for (const el of column.querySelectorAll('*')) {
  // MathJax's own parts (stretchy delimiters, ...) clip on purpose: check its container only.
  if (!visible(el) || (el.parentElement && el.parentElement.closest('mjx-container'))) continue;
  const st = getComputedStyle(el);
  if (st.position === 'fixed') continue;
  // (a) content hidden behind a horizontal scroll bar (or clipped) inside the element
  // Only block boxes: an inline formula's box is a few pixels narrower than its glyphs.
  const scrolls = ['auto', 'scroll', 'hidden', 'clip'].includes(st.overflowX)
    && !st.display.startsWith('inline');
  if (scrolls && el.clientWidth > 2 && el.scrollWidth > el.clientWidth + SLACK) {
    if (![...seen].some(s => s.contains(el))) {
      seen.add(el);
      wide.push(describe(el) + ': content ' + el.scrollWidth + ' px wide in a box of '
        + el.clientWidth + ' px');
    }
    continue;
  }
  // (b) the element sticks out of the content column
  const r = el.getBoundingClientRect();
  if (r.width > 0 && r.right > colRect.right + SLACK && ![...seen].some(s => s.contains(el))) {
    seen.add(el);
    wide.push(describe(el) + ': right edge at ' + Math.round(r.right)
      + ' px, content column ends at ' + Math.round(colRect.right) + ' px ('
      + Math.round(r.width) + ' px wide)');
  }
}

// 4. Every link of the page, resolved to an absolute URL.
const links = [...document.querySelectorAll('a[href]')].map(a => a.href);

// JSON: a large nested result is passed back more reliably as one string.
return JSON.stringify({tex: tex, images: images, imageUrls: imageUrls, wide: wide, links: links});
