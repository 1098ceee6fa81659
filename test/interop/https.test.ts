// The HTTPS suite with the record layer inside the card (PROCESS-EAP-ENCRYPT/DECRYPT).
import { httpsSuite } from './https-suite.js';

httpsSuite('card');
