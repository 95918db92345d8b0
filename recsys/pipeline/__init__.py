"""The one pipeline every path runs: queries in, explained recommendations out."""
