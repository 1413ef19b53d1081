/* The course website's own script (tools/site_fixes.py adds it to every page). */

/* Search: a page opened from the search results has the search terms highlighted by Sphinx
   (sphinx_highlight.js, a few milliseconds after load), but the reader lands at the top of a
   long chapter, far from any of them. Scroll the first highlighted term of the page's text into
   view. */
(() => {
  // The first highlighted term a reader can see (not one inside a collapsed cell or a tooltip).
  const shown = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden";
  const firstMatch = () =>
    Array.from(document.querySelectorAll("article.bd-article span.highlighted")).find(shown);
  const reveal = (triesLeft) => {
    const match = firstMatch();
    if (match) {
      match.scrollIntoView({ block: "center", behavior: "instant" }); // not a 20,000-px glide
    } else if (triesLeft > 0) {
      window.setTimeout(() => reveal(triesLeft - 1), 50);
    }
  };
  // Read now, in <head>: sphinx_highlight.js clears both once the page is ready.
  const searched =
    localStorage.getItem("sphinx_highlight_terms") || new URL(window.location).searchParams.get("highlight");
  // Scroll once the page has its final height: images loaded, formulas typeset.
  window.addEventListener("load", async () => {
    if (!searched || typeof Search !== "undefined") return; // no search, or the search page itself
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    reveal(20);
  });
})();

/* Figures: on a phone a two-panel figure is shrunk to the column (about 360 px) and its labels
   are too small to read. Each figure made by a cell links to its image at full size: a tap opens
   it, to zoom and pan as any image. */
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("div.cell_output img").forEach((img) => {
    if (img.closest("a")) return;
    const link = document.createElement("a");
    link.href = img.src;
    link.className = "course-figure-link";
    link.title = "Open the figure at full size";
    img.replaceWith(link);
    link.appendChild(img);
  });
});
