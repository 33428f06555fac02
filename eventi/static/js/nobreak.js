// "M-Pesa" never breaks at its hyphen: the server renders each one in the page's text inside a white-space:
// nowrap span (eventi/web/nobreak.py, the `nobreak` filter); this does the same for what scripts write later.
const WORD = "M-Pesa";
const LEAVE = ".nowrap, .visually-hidden, option, script, style"; // already kept whole, unseen, or text-only

function keepWhole(node) {
  if (node.nodeType === Node.ELEMENT_NODE) {
    for (const child of Array.from(node.childNodes)) keepWhole(child);
    return;
  }
  const parent = node.parentElement;
  if (node.nodeType !== Node.TEXT_NODE || !parent || !node.data.includes(WORD) || parent.closest(LEAVE)) return;
  const parts = [];
  node.data.split(WORD).forEach((text, i) => {
    if (i > 0) {
      const word = document.createElement("span");
      word.className = "nowrap";
      word.textContent = WORD;
      parts.push(word);
    }
    if (text) parts.push(document.createTextNode(text));
  });
  node.replaceWith(...parts);
}

const main = document.querySelector("main");
if (main) {
  keepWhole(main);
  new MutationObserver((records) => {
    for (const record of records) {
      if (record.type === "characterData") keepWhole(record.target);
      else record.addedNodes.forEach(keepWhole);
    }
  }).observe(main, { childList: true, characterData: true, subtree: true });
}
