"""Feature browser over an ``interplab sae analyze`` folder: local web app and static export."""

from interplab.sae.browser.app import BrowserApp, make_server, serve_browser
from interplab.sae.browser.data import AnalysisData, AnalysisFiles
from interplab.sae.browser.export import ExportResult, choose_features, export_browser

__all__ = [
    "AnalysisData",
    "AnalysisFiles",
    "BrowserApp",
    "ExportResult",
    "choose_features",
    "export_browser",
    "make_server",
    "serve_browser",
]
