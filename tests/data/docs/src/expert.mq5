//+------------------------------------------------------------------+
//| expert.mq5 - a sample expert advisor with an ATR trailing stop     |
//+------------------------------------------------------------------+
#property copyright "quantgate team"
#property version   "1.00"

input double InpAtrMultiplier = 2.5; // trailing distance in ATRs
input int    InpAtrPeriod     = 14;

int atr_handle = INVALID_HANDLE;

// Creates the ATR handle once.
int OnInit()
{
   atr_handle = iATR(_Symbol, PERIOD_CURRENT, InpAtrPeriod);
   return atr_handle == INVALID_HANDLE ? INIT_FAILED : INIT_SUCCEEDED;
}

// Moves the stop loss of the open position behind the price by a
// multiple of the ATR; it never moves the stop backwards.
void TrailStop()
{
   double atr[1];
   if (CopyBuffer(atr_handle, 0, 0, 1, atr) != 1) return;
   if (!PositionSelect(_Symbol)) return;
   double bid = SymbolInfoDouble(_Symbol, SYMBOL_BID);
   double sl = PositionGetDouble(POSITION_SL);
   double want = bid - InpAtrMultiplier * atr[0];
   if (want > sl) { /* modify the position */ }
}

void OnTick()
{
   TrailStop();
}
