import { operatorSuite } from './operator-suite.js';

operatorSuite('service');
