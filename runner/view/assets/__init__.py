"""The page's own files, shipped as package data: index.html (with a {{DATA}} slot), view.css, view.js."""
