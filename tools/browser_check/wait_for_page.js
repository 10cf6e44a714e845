// Run by tools/browser_check.py (execute_async_script): waits for MathJax's first
// typesetting pass and for every image to finish loading (or fail), at most 15 s.
const done = arguments[arguments.length - 1];
const waits = [];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  waits.push(MathJax.startup.promise.catch(() => null));
}
for (const img of document.images) {
  img.loading = 'eager';
  if (!img.complete) {
    waits.push(new Promise(r => {
      img.addEventListener('load', r);
      img.addEventListener('error', r);
    }));
  }
}
const timeout = new Promise(r => setTimeout(r, 15000));
Promise.race([Promise.all(waits), timeout]).then(() => done(true));
