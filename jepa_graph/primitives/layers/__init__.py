"""The torch side of the primitive blocks: one module per family, imported by a block's ``build()``
(never by its shape rule), so loading and checking a spec import no torch."""
