"""Data sets: where their files come from (a verified source chain), IDX reading, the loud
fallback, the seed's split as normalised tensors on the run's device.

Raw data (uint8 images, labels) is loaded once per process; each (data set, seed, device)
split is normalised once and kept as tensors on the run's device, reused across runs.
Modules: raw (types), idx (files), checksums, sources (the chain), resolve (by name), split,
builtin (the mnist, mnist-sample and fashion-mnist plugin).
"""

from workbench.data.checksums import (content_md5, file_sha256, verify_checksums,  # noqa: F401
                                      verify_md5s)
from workbench.data.idx import (GOOD_COPY, IDX_FILES, find_idx_files,  # noqa: F401
                                load_idx_folder, read_idx)
from workbench.data.raw import (ENV_DATA_DIR, ENV_OFFLINE, FALLBACK_MARK,  # noqa: F401
                                DataError, DataRequest, RawData, default_data_dir, loaded_name,
                                offline)
from workbench.data.resolve import (RETRY_SECONDS, chain_for, clear_caches,  # noqa: F401
                                    load_spec, resolve)
from workbench.data.sources import (Attempt, Chain, FetchEvent, FolderSource,  # noqa: F401
                                    NpmSource, Source, TorchvisionSource, network_reachable)
from workbench.data.split import Split, make_split, val_size  # noqa: F401
