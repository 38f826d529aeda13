"""Metadata exchange with other catalogues (DCAT-AP.de)."""
