"""Self-contained HTML pages about a model: the training report and the live monitor page.

``model_report`` renders the report stored in each model version; ``monitor_page`` the
live view of production performance, drift and acceptance. Both embed their plots as
inline SVG drawn by matplotlib (``plots``), with no external file of any kind, so a page
opens offline. Importing the page modules is cheap: matplotlib loads on first render.
"""
