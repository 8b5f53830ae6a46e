package dev.convspark.datasets.spark;

import java.util.Locale;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.analysis.UnresolvedRelation;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.parser.ParameterContext;
import org.apache.spark.sql.catalyst.parser.ParseException;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;
import scala.Function1;
import scala.collection.immutable.Seq;
import scala.runtime.AbstractFunction1;
import scala.runtime.AbstractPartialFunction;
import scala.runtime.BoxedUnit;

/**
 * Lets SQL query IDX files by path, as Spark does for its built-in file formats:
 * {@code SELECT label, count(*) FROM idx.`/data/mnist/train-images-idx3-ubyte` GROUP BY label}.
 * Spark resolves such paths only for its own file-format sources, so this extension rewrites
 * {@code idx.`path`} while parsing. Enable it with
 * {@code spark.sql.extensions=dev.convspark.datasets.spark.IdxSqlExtensions}. Without it,
 * {@code CREATE TEMPORARY VIEW v USING idx OPTIONS (path '...')} works on any session.
 */
public final class IdxSqlExtensions extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {

  @Override
  public BoxedUnit apply(SparkSessionExtensions extensions) {
    extensions.injectParser(new scala.runtime.AbstractFunction2<SparkSession, ParserInterface, ParserInterface>() {
      @Override
      public ParserInterface apply(SparkSession session, ParserInterface delegate) {
        return new Parser(session, delegate);
      }
    });
    return BoxedUnit.UNIT;
  }

  /** The session's parser, with {@code idx.`path`} relations replaced by reads of the idx source. */
  static final class Parser implements ParserInterface {
    private final SparkSession session;
    private final ParserInterface delegate;

    Parser(SparkSession session, ParserInterface delegate) {
      this.session = session;
      this.delegate = delegate;
    }

    private LogicalPlan rewrite(LogicalPlan plan) {
      return plan.transformUp(new AbstractPartialFunction<LogicalPlan, LogicalPlan>() {
        @Override
        public boolean isDefinedAt(LogicalPlan p) {
          return path(p) != null;
        }

        @Override
        @SuppressWarnings("unchecked")
        public <A1 extends LogicalPlan, B1> B1 applyOrElse(A1 p, Function1<A1, B1> fallback) {
          String path = path(p);
          if (path == null) {
            return fallback.apply(p);
          }
          return (B1) session.read().format("idx").load(path).queryExecution().logical();
        }
      });
    }

    /** The path of an {@code idx.`path`} relation, else null. */
    private static String path(LogicalPlan p) {
      if (p instanceof UnresolvedRelation r) {
        Seq<String> id = r.multipartIdentifier();
        if (id.size() == 2 && id.head().toLowerCase(Locale.ROOT).equals("idx")) {
          return id.last();
        }
      }
      return null;
    }

    @Override
    public LogicalPlan parsePlan(String sqlText) throws ParseException {
      return rewrite(delegate.parsePlan(sqlText));
    }

    @Override
    public LogicalPlan parsePlanWithParameters(String sqlText, ParameterContext context) throws ParseException {
      return rewrite(delegate.parsePlanWithParameters(sqlText, context));
    }

    @Override
    public LogicalPlan parseQuery(String sqlText) throws ParseException {
      return rewrite(delegate.parseQuery(sqlText));
    }

    @Override
    public Expression parseExpression(String sqlText) throws ParseException {
      return delegate.parseExpression(sqlText);
    }

    @Override
    public TableIdentifier parseTableIdentifier(String sqlText) throws ParseException {
      return delegate.parseTableIdentifier(sqlText);
    }

    @Override
    public FunctionIdentifier parseFunctionIdentifier(String sqlText) throws ParseException {
      return delegate.parseFunctionIdentifier(sqlText);
    }

    @Override
    public Seq<String> parseMultipartIdentifier(String sqlText) throws ParseException {
      return delegate.parseMultipartIdentifier(sqlText);
    }

    @Override
    public StructType parseRoutineParam(String sqlText) throws ParseException {
      return delegate.parseRoutineParam(sqlText);
    }

    @Override
    public StructType parseTableSchema(String sqlText) throws ParseException {
      return delegate.parseTableSchema(sqlText);
    }

    @Override
    public DataType parseDataType(String sqlText) throws ParseException {
      return delegate.parseDataType(sqlText);
    }
  }
}
