# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""One module per protocol: each defines FRAMING (a length-prefix spec or None) and Server."""
