package dev.convspark.datasets.spark;

import org.apache.spark.sql.connector.read.InputPartition;

/**
 * A range of records of one file: {@code count} records from {@code first}.
 *
 * @param file  the data file and its labels
 * @param first index of the first record
 * @param count number of records
 */
record IdxInputPartition(IdxFile file, long first, long count) implements InputPartition {
}
