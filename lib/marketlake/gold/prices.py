"""USD value of exchange amounts as of their time.

An asset with a fixed USD value in conf (`exchange.asset_usd`: the USD stablecoins and the fee token) is worth that.
Any other asset is worth the price of the last trade of one of its USD-stable pairs (`ASSET/USDT`, ...) at or before
the amount's time, times the quote's fixed value, found with our own point-in-time `asof_join`. Where no such trade
exists yet (the asset's first minutes in the data read), the USD value is null and `usd_priced` says so; the
amount itself is never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from marketlake.gold.asof import asof_join
from marketlake.gold.common import lookup

_ASSET, _AT, _PRICE, _TRADE = "_price_asset", "_price_at", "_price_usd", "_price_trade_id"


def base_asset(pair: Column) -> Column:
    return F.substring_index(pair, "/", 1)


def quote_asset(pair: Column) -> Column:
    return F.substring_index(pair, "/", -1)


def usd_prices(trades: DataFrame, fixed_usd: Mapping[str, float]) -> DataFrame:
    """(asset, time, USD price, trade id) from every trade of a pair quoted in an asset with a fixed USD value."""
    quote = quote_asset(F.col("pair"))
    return trades.where(quote.isin(*fixed_usd) & F.col("price").isNotNull() & F.col("executed_at").isNotNull()).select(
        base_asset(F.col("pair")).alias(_ASSET),
        F.col("executed_at").alias(_AT),
        (F.col("price").cast("double") * lookup(fixed_usd, quote)).alias(_PRICE),
        F.col("trade_id").alias(_TRADE),
    )


def with_usd_rate(
    df: DataFrame, asset: Column, at: str, prices: DataFrame, fixed_usd: Mapping[str, float], name: str
) -> DataFrame:
    """df with `name`: the USD value of one unit of `asset` at time `at` (null when no price is known yet)."""
    fixed = lookup(fixed_usd, asset)
    keyed = df.withColumn(_ASSET, F.when(fixed.isNull(), asset))
    joined = asof_join(keyed, prices, _ASSET, at, _AT, tiebreak=[_TRADE])
    return joined.withColumn(name, F.coalesce(fixed, F.col(_PRICE))).drop(_ASSET, _AT, _PRICE, _TRADE)


def exact_notional(quantity: Column, price: Column) -> Column:
    """quantity x price without rounding: DECIMAL(20,8) x DECIMAL(20,8) overflows Spark's 38 digits, which then
    keeps only 6 decimals (1e-6 BTC is about 6 US cents a trade on a BTC-quoted pair); as DECIMAL(18,8) each, the
    product is an exact DECIMAL(37,16)."""
    return quantity.cast("decimal(18,8)") * price.cast("decimal(18,8)")


def priced_trades(trades: DataFrame, fixed_usd: Mapping[str, float]) -> DataFrame:
    """Trades with notional (quote units), volume_usd and fee_usd valued as of the trade, and `usd_priced`: false
    when the volume or a known fee could not be valued (no price for the asset at or before the trade)."""
    prices = usd_prices(trades, fixed_usd)
    rated = with_usd_rate(trades, quote_asset(F.col("pair")), "executed_at", prices, fixed_usd, "_quote_usd")
    rated = with_usd_rate(rated, F.col("fee_asset"), "executed_at", prices, fixed_usd, "_fee_usd")
    notional = exact_notional(F.col("quantity"), F.col("price"))
    volume = notional.cast("double") * F.col("_quote_usd")
    fee = F.col("fee").cast("double") * F.col("_fee_usd")
    priced = volume.isNotNull() & (F.col("fee").isNull() | fee.isNotNull())
    return rated.select(
        *trades.columns,
        notional.alias("notional"),
        volume.alias("volume_usd"),
        fee.alias("fee_usd"),
        priced.alias("usd_priced"),
    )


def priced_amounts(
    df: DataFrame, trades: DataFrame, fixed_usd: Mapping[str, float], amount: str, asset: str, at: str
) -> DataFrame:
    """df with `<amount>_usd` (the amount valued in USD as of `at`) and `usd_priced` (false when no price yet)."""
    rated = with_usd_rate(df, F.col(asset), at, usd_prices(trades, fixed_usd), fixed_usd, "_asset_usd")
    value = F.col(amount).cast("double") * F.col("_asset_usd")
    return rated.select(
        *df.columns,
        value.alias(f"{amount}_usd"),
        (value.isNotNull() | F.col(amount).isNull()).alias("usd_priced"),
    )
