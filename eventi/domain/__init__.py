"""Pure rules every layer may use: statuses, prices, reasons, phones, text, tokens, event files. No I/O."""
