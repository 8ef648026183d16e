"""Renderings of results: text for the terminal, Markdown for CI summaries, JUnit XML (and HTML)."""
