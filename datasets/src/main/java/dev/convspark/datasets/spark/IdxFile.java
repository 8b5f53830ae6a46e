package dev.convspark.datasets.spark;

import dev.convspark.datasets.idx.IdxHeader;
import java.io.Serializable;

/**
 * One data file of a read, with the labels file paired with it (or none), both validated.
 *
 * @param data       the data (images) file
 * @param header     the data file's header
 * @param compressed whether the data file is gzip-compressed (then it is read as one split)
 * @param labels     the labels file, or null
 */
record IdxFile(HadoopIdxSource data, IdxHeader header, boolean compressed, HadoopIdxSource labels)
    implements Serializable {
}
