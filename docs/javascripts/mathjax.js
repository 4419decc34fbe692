// MathJax 3 for Material's arithmatex output (Markdown pages: \( \) and \[ \] in .arithmatex)
// and for the tutorials' Markdown cells rendered by mkdocs-jupyter ($ $ and $$ $$ inside <p>s of
// .jp-RenderedMarkdown). Material's recipe ignores every class but arithmatex, which would skip
// those <p>s (an ignored class pattern that matches any class also matches none), so here only the
// site's chrome is ignored; <pre> and <code> are skipped by MathJax itself.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: "tex2jax_ignore|md-header|md-nav|md-search|md-footer",
    processHtmlClass: "arithmatex|tex2jax_process",
  },
};

document$.subscribe(() => {
  if (!window.MathJax.startup || !window.MathJax.typesetPromise) return;
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
