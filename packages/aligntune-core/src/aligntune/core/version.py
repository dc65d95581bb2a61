"""aligntune's version: names the images and is recorded in every run directory."""

VERSION = "0.1.0"
